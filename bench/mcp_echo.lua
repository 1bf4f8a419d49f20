-- wrk script: a modern (2026-07-28) MCP tools/call of the built-in `echo`
-- tool, the same request on every connection, keep-alive.
-- Status checking uses wrk's own "Non-2xx or 3xx responses" counter (read by
-- bench/http_echo.sh) rather than a response() callback, which would make
-- wrk run Lua per response and steal CPU from the server on a small box.
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{'
  .. '"name":"echo","arguments":{"text":"hello"},"_meta":{'
  .. '"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
  .. '"io.modelcontextprotocol/clientCapabilities":{}}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "echo"
