-- wrk script for bench/gateway.sh: MCP tools/call of an echo tool on every
-- connection, keep-alive. Set by the environment:
--   GW_TOOL     tool name (echo, echo__echo)
--   GW_SESSION  Mcp-Session-Id of a legacy session opened beforehand; the
--               request is then a 2025-11-25 call in that session. Unset:
--               a modern (2026-07-28) stateless call with _meta.
--   GW_TEXT     the text to echo (default "hello")
-- Every request gets its own JSON-RPC id (unique across wrk's threads):
-- requests in flight together in one legacy session must not share an id,
-- or a relay may answer one and lose the other. All targets run this same
-- script so the load generator costs them the same. There is no response()
-- callback: statuses are counted by wrk itself ("Non-2xx or 3xx
-- responses"), and bodies are checked by curl before and after each run.
local tool = os.getenv("GW_TOOL") or "echo"
local session = os.getenv("GW_SESSION") or ""
local text = os.getenv("GW_TEXT") or "hello"

local threads = 0
function setup(thread)
  thread:set("thread_no", threads)
  threads = threads + 1
end

local head = '{"jsonrpc":"2.0","id":'
local tail
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
if session ~= "" then
  tail = ',"method":"tools/call","params":{"name":"' .. tool
    .. '","arguments":{"text":"' .. text .. '"}}}'
  wrk.headers["Mcp-Session-Id"] = session
  wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
else
  tail = ',"method":"tools/call","params":{"name":"' .. tool
    .. '","arguments":{"text":"' .. text .. '"},'
    .. '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    .. '"io.modelcontextprotocol/clientCapabilities":{}}}}'
  wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
  wrk.headers["Mcp-Method"] = "tools/call"
  wrk.headers["Mcp-Name"] = tool
end

local next_id
function init(args)
  next_id = (thread_no or 0) * 1000000000 + 1
end

function request()
  local id = next_id
  next_id = next_id + 1
  return wrk.format(nil, nil, nil, head .. id .. tail)
end
