// Package schema is Agentry's schema engine (draft §6): schema identifiers,
// version compatibility, agents' schema declarations, and a registry that
// validates message payloads against JSON Schema (draft-07) documents.
//
// It does no I/O of its own: records live behind the Store port, so the
// local process and the Lambdas use the same code over different adapters.
//
// # Identifiers
//
//	id        = namespace ":" name ".v" major [ "." minor ]
//	namespace = [a-z] *[a-z0-9-]            ; "agntcy", "agentry", "acme", …
//	name      = segment 1*( "." segment )   ; at least <domain>.<entity>
//	segment   = [a-z0-9] *[a-z0-9_-]
//	major     = minor = "0" / [1-9] *8DIGIT ; no leading zeros
//
// Underscores are allowed in segments because the draft's own example
// (agntcy:logistics.pickup_confirmation.v1) uses one. Identifiers are at
// most MaxIDLen bytes. Only this canonical spelling parses, so ID.String
// gives back exactly the string that was parsed and ids can be compared as
// strings. A missing minor is NoMinor (-1), not 0, so that "…v2" and
// "…v2.0" stay distinct registry keys.
//
// # Compatibility
//
// The draft makes minor versions backward compatible and major versions
// not. Compatible(supported, got) therefore needs the same namespace, name
// and major. A declaration without a minor ("…v2") accepts every v2
// message; a declaration with one ("…v2.1") means "understands everything
// up to this minor" and accepts v2, v2.0 and v2.1 but not v2.2, whose
// additions the receiver may not know. A message without a minor counts
// as minor 0.
//
// Supports matches an id against a declaration list (DNS "schemas=", the
// well-known document, agent registrations): an entry ending in "*" is a
// plain string prefix ("agntcy:commerce.*"; a lone "*" matches every id),
// any other entry must parse and be Compatible.
//
// # Registry
//
// The Store is the source of truth; a Registry caches compiled schemas per
// id (at most DefaultCacheSize, arbitrary eviction) and uses an entry only
// while the stored record still has the same version and bytes, so several
// processes over one Store never validate against a stale document. Every
// Validate therefore costs one Store read; the cache saves the compile.
// Validate looks the id up exactly: it does not fall back to a compatible
// version.
//
// # Validation errors
//
// Result.Errors has the draft §13.2 "validation_errors" shape: entries
// {"field", "error"} with an optional "value" (scalar values only, long
// strings cut). Field is the path inside the payload in the draft's
// notation: members joined with ".", array indices in brackets
// ("order.items[0].price"); a member name that would make the path
// ambiguous (empty, or containing . [ ] " \ spaces or control characters)
// is written as a quoted index (`meta["a.b"]`). The payload root is the
// empty string. A missing required member or a member that is not allowed
// is reported at that member's own path. Errors are de-duplicated, sorted
// by field then message, and capped at MaxFieldErrors (Result.Truncated).
//
// # Safety
//
// A registered schema is untrusted input. Documents are capped at
// MaxSchemaSize, every "$ref" must be a local "#…" fragment, and "$schema"
// may only name draft-07, because gojsonschema would otherwise fetch
// http(s) and file URLs while compiling (SSRF, local file reads). As a
// second line, the compiler runs with a loader that refuses to load
// anything, so a reference the checks missed fails instead of being
// fetched.
package schema
