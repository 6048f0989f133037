// Calls one tool through @modelcontextprotocol/ext-tasks as a 2026-07-28 requester and prints
// {"kind", "taskId", "result"} as JSON. The session port speaks raw Streamable HTTP (fetch), so
// the run needs nothing but this package. Usage: node tasks_requester.mjs URL TOOL JSON_ARGS
import { resultFromTaskOutcome, withTasks } from "@modelcontextprotocol/ext-tasks/client";

const [url, tool, rawArgs] = process.argv.slice(2);
const PROTOCOL = "2026-07-28";
const TASKS = "io.modelcontextprotocol/tasks";

function frame(request) {
  const params = request.params ?? {};
  const meta = params._meta ?? {};
  const capabilities = meta["io.modelcontextprotocol/clientCapabilities"] ?? {};
  return {
    ...request,
    params: {
      ...params,
      _meta: {
        ...meta,
        "io.modelcontextprotocol/protocolVersion": PROTOCOL,
        "io.modelcontextprotocol/clientInfo": { name: "asya-tasks-requester", version: "1" },
        "io.modelcontextprotocol/clientCapabilities": {
          ...capabilities,
          extensions: { ...(capabilities.extensions ?? {}), [TASKS]: {} },
        },
      },
    },
  };
}

function routingName(request) {
  const params = request.params ?? {};
  return request.method === "tools/call" ? params.name : params.taskId;
}

function lastMessage(text) {
  const data = text.split("\n").filter((line) => line.startsWith("data: "));
  return JSON.parse(data.length ? data[data.length - 1].slice(6) : text);
}

const port = {
  endpointId: "asya-gateway",
  taskCapabilities: { generation: "v2", capabilities: {} },
  invalidated: false,
  async dispatch(request, options = {}) {
    const framed = frame({ jsonrpc: "2.0", id: Math.floor(Math.random() * 1e9), ...request });
    const headers = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": PROTOCOL,
      "mcp-method": framed.method,
      ...(options.context?.headers ?? {}),
    };
    const name = routingName(framed);
    if (typeof name === "string") headers["mcp-name"] = name;
    const response = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify(framed),
      signal: options.signal,
    });
    const reply = lastMessage(await response.text());
    return "error" in reply
      ? { kind: "error", error: reply.error }
      : { kind: "result", result: reply.result };
  },
  onServerRequest: () => () => {},
  onNotification: () => () => {},
  onInvalidated: () => () => {},
};

const session = withTasks(port);
try {
  const execution = await session.callTool(tool, JSON.parse(rawArgs ?? "{}"));
  const { outcome } = await execution.settle();
  const result = resultFromTaskOutcome(outcome);
  console.log(JSON.stringify({ kind: execution.kind, taskId: execution.handle?.taskId, result }));
} finally {
  await session.close();
}
