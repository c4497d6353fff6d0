// A real OpenID Connect provider for keyledger's single sign-on tests
// (web/oidc_provider_test.go): npm oidc-provider, with its development
// login form (devInteractions), one confidential client and a few
// accounts. Not for anything but tests: any password is accepted, the
// signing keys are oidc-provider's development keys, and everything lives
// in memory.
//
//   node server.mjs --redirect-uri URL (--port N | --listen-fd 3)
//                   [--client-id ID] [--client-secret S] [--id-token-claims]
//
// It prints "ready ISSUER" on stdout once it listens. The issuer is
// http://127.0.0.1:PORT. With --listen-fd it serves on a socket the test
// opened and passed down (no port race); --port is for running it by hand.
//
// --id-token-claims turns conformIdTokenClaims off, so that ID tokens
// carry the email and profile claims themselves. By default (as at many
// providers) an ID token from the code flow carries only sub, auth_time,
// nonce and the like, and email/email_verified come from UserInfo.
//
// Besides, it prints "access_token VALUE" on stdout for each access token
// it issues, so that the test can check keyledger never logs one, and
// "userinfo STATUS SUB" for each UserInfo answer.
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string' },
    'listen-fd': { type: 'string' },
    'redirect-uri': { type: 'string' },
    'client-id': { type: 'string', default: 'keyledger-test' },
    'client-secret': { type: 'string', default: 'idp-client-secret-9f3a' },
    'id-token-claims': { type: 'boolean', default: false },
  },
});
if (!opts['redirect-uri'] || (opts.port === undefined) === (opts['listen-fd'] === undefined)) {
  console.error('usage: node server.mjs --redirect-uri URL (--port N | --listen-fd FD) [--id-token-claims]');
  process.exit(2);
}

// The login name typed into the development form is the account id (and
// the subject). "impostor" is a provider bug on purpose: its UserInfo
// answer names another subject than its ID token.
const accounts = {
  member: { email: 'member@example.com', email_verified: true, name: 'Member From SSO' },
  lead: { email: 'Lead@Example.com', email_verified: true, name: 'Lead From SSO' },
  'new.hire': { email: 'new.hire@corp.example', email_verified: true, name: 'New Hire' },
  unverified: { email: 'unverified@corp.example', email_verified: false, name: 'Not Verified' },
  impostor: { email: 'admin@example.com', email_verified: true, name: 'Impostor' },
};

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  if (opts['listen-fd'] !== undefined) {
    server.listen({ fd: Number(opts['listen-fd']) }, resolve);
  } else {
    server.listen(Number(opts.port), '127.0.0.1', resolve);
  }
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: opts['client-id'],
    client_secret: opts['client-secret'],
    redirect_uris: [opts['redirect-uri']],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    // No require_auth_time: keyledger sends max_age, which makes
    // auth_time a required claim (OpenID Connect Core 3.1.2.1).
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  conformIdTokenClaims: !opts['id-token-claims'],
  features: { devInteractions: { enabled: true } },
  // Fixed cookie keys: the provider lives for one test.
  cookies: { keys: ['keyledger-test-only-cookie-key'] },
  async findAccount(ctx, id) {
    const a = accounts[id];
    if (!a) {
      return undefined;
    }
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...a };
      },
    };
  },
});

provider.on('access_token.saved', (token) => {
  // An opaque access token's value is its jti; 'saved' is the event of a
  // token stored in the provider (opaque), 'issued' of a JWT one.
  process.stdout.write(`access_token ${token.jti}\n`);
});
provider.on('server_error', (ctx, err) => {
  console.error('server_error', err);
});

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/me' && ctx.body && typeof ctx.body === 'object') {
    process.stdout.write(`userinfo ${ctx.status} ${ctx.body.sub}\n`);
    if (ctx.body.sub === 'impostor') {
      ctx.body = { ...ctx.body, sub: 'member' };
    }
  }
});

server.on('request', provider.callback());
process.stdout.write(`ready ${issuer}\n`);

// The test ends the process; closing stdin (the test went away) ends it too.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
