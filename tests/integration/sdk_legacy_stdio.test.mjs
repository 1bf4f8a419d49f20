// The official MCP TypeScript SDK (v1 @modelcontextprotocol/sdk, initialize) over stdio
// against the real switchboard binary (SWITCHBOARD_BIN). Scenarios: lib/suite.mjs.
import { defineSdkSuite } from './lib/suite.mjs';

defineSdkSuite({ era: 'legacy', transport: 'stdio' });
