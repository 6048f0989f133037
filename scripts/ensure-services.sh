#!/usr/bin/env bash
# Makes sure the services the test suites use answer: PostgreSQL (127.0.0.1:5432),
# RabbitMQ (127.0.0.1:5672) and NATS with JetStream (127.0.0.1:4222). A service that is down is started with the commands of docs/contributing.md#services;
# one that cannot be started stops the run with a message saying what to do.
set -u

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name, port, seconds
  local i
  for ((i = 0; i < $3 * 2; i++)); do
    port_open "$2" && return 0
    sleep 0.5
  done
  return 1
}

fail() {
  echo "ensure-services: $1" >&2
  echo "ensure-services: on Debian, install with: apt-get install -y postgresql rabbitmq-server nats-server (as root)" >&2
  exit 1
}

if ! port_open 5432; then
  echo "ensure-services: PostgreSQL is down; starting it"
  command -v pg_ctlcluster >/dev/null || fail "PostgreSQL is not installed (pg_ctlcluster not found)"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start ||
    fail "could not start PostgreSQL"
  wait_for postgresql 5432 30 || fail "PostgreSQL did not open 127.0.0.1:5432 within 30 s"
fi

rabbit_ready() {
  if command -v rabbitmq-diagnostics >/dev/null; then
    rabbitmq-diagnostics -q ping >/dev/null 2>&1
  else
    port_open 5672
  fi
}

# An open AMQP port means the node is up (its listeners open last). rabbitmq-diagnostics is
# asked only about a node this script starts: run by another user than the node's, it fails
# on the Erlang cookie even though the broker serves.
if ! port_open 5672; then
  echo "ensure-services: RabbitMQ is down; starting it"
  command -v rabbitmq-server >/dev/null || fail "RabbitMQ is not installed (rabbitmq-server not found)"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for ((i = 0; i < 120; i++)); do
    rabbit_ready && port_open 5672 && break
    sleep 0.5
  done
  rabbit_ready && port_open 5672 || fail "RabbitMQ did not answer within 60 s"
fi
# NATS: started with JetStream and a store of its own (the Debian package's paths).
if ! port_open 4222; then
  echo "ensure-services: NATS is down; starting it"
  command -v nats-server >/dev/null || fail "NATS is not installed (nats-server not found; apt-get install -y nats-server)"
  mkdir -p /var/lib/nats-server
  nohup nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server \
    -l /var/log/nats-server.log >/dev/null 2>&1 &
  wait_for nats 4222 30 || fail "NATS did not open 127.0.0.1:4222 within 30 s"
fi
echo "ensure-services: PostgreSQL, RabbitMQ and NATS are up"
