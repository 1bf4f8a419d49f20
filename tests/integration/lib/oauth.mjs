// oauth.mjs: OAuth test material made with node:crypto: RS256 and ES256
// key pairs and their JWKS, compact JWS tokens, the claims of a tenant,
// and the auth.oauth YAML naming the JWKS file.
import crypto from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ISSUER = 'https://login.example.test';
export const RESOURCE = 'https://switchboard.example.test/mcp';
const b64u = (b) => Buffer.from(b).toString('base64url');

/** RS256 and ES256 key pairs, and the JWKS of their public halves. */
export function makeKeys() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwks = {
    keys: [
      { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', use: 'sig', alg: 'RS256' },
      { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', use: 'sig', alg: 'ES256' },
    ],
  };
  return { rsa, ec, other, jwks };
}

/** A compact JWS: alg RS256, ES256, HS256 (key: the secret) or none. */
export function signJwt(alg, key, claims, header = {}) {
  const input = `${b64u(JSON.stringify({ alg, typ: 'JWT', ...header }))}.${b64u(JSON.stringify(claims))}`;
  let sig = Buffer.alloc(0);
  if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), key);
  else if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest();
  return `${input}.${b64u(sig)}`;
}

export const now = () => Math.floor(Date.now() / 1000);
export const claimsFor = (tenant, extra = {}) => ({
  iss: ISSUER, aud: RESOURCE, sub: `user-of-${tenant}`, tenant, iat: now(), exp: now() + 600, ...extra,
});

/** The auth.oauth YAML for a JWKS (written to a temp file). */
export function oauthConfig(jwks, extra = '') {
  const dir = mkdtempSync(join(tmpdir(), 'sb-oauth-'));
  const file = join(dir, 'jwks.json');
  writeFileSync(file, JSON.stringify(jwks));
  return [
    '  oauth:',
    `    issuer: ${ISSUER}`,
    `    resource: ${RESOURCE}`,
    `    jwks_file: ${file}`,
    `    authorization_servers: [${ISSUER}]`,
    '    scopes_supported: [contexts:read, contexts:write]',
    '    leeway_s: 5',
    extra,
  ].join('\n');
}
