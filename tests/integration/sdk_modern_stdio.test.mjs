// The official MCP TypeScript SDK (v2 @modelcontextprotocol/client, 2026-07-28) over stdio
// against the real switchboard binary (SWITCHBOARD_BIN). Scenarios: lib/suite.mjs.
import { defineSdkSuite } from './lib/suite.mjs';

defineSdkSuite({ era: 'modern', transport: 'stdio' });
