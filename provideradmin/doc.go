// Package provideradmin implements keyledger.ProviderAdmin over HTTP: it
// talks to OpenAI's organization admin API (/v1/organization/…) and
// Anthropic's (/v1/organizations/…) with an admin key, to list every API
// key that exists there, read usage per key and day, and revoke a key at
// the source. docs/providers.md ("How keyledger talks to each provider")
// lists the exact endpoints, headers and field mapping.
//
// Safety:
//   - The admin key goes only into the auth header (Authorization: Bearer
//     for OpenAI, x-api-key for Anthropic), never into a URL, an error or a
//     log line. A provider error message that repeats the key has it cut
//     out before it becomes a ProviderAdminError.Message.
//   - Redirects are never followed: Go keeps custom headers such as
//     x-api-key across a redirect to another host, so a 3xx is an error.
//   - Every request has its own deadline (Config.Timeout) on top of the
//     caller's context, and response bodies are read up to a cap.
//   - OpenAI key listing fans out per project with at most
//     Config.Concurrency requests in flight.
//   - A 429 is retried (at most maxRetries times) only when Retry-After
//     asks for a short wait (Config.MaxRetryWait); longer waits come back
//     to the caller as ProviderRateLimited with RetryAfter set, since a
//     sync job can come back later while a person waiting for a page
//     cannot wait a minute.
package provideradmin
