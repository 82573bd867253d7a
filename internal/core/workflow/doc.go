// Package workflow is the one definition of AMTP coordination (draft §7,
// shared/PROTOCOL.md "Coordination"). It is a pure state machine: Start turns
// a coordinated message into a State and the first Actions; Apply takes a
// State and one Event (a reply, a permanent delivery failure, a timeout) and
// returns the next State and what the caller must do. It does no I/O, reads
// no clock and starts no goroutines, so that the in-process driver of the
// local gateway and the Step Functions path on AWS reach the same outcome
// from the same inputs. State, Event and Action are plain JSON-serialisable
// values: they are stored in DynamoDB or bbolt and passed between Lambdas.
//
// # Driving a workflow
//
// Only the initiator's gateway runs the workflow. The coordination message is
// stored as usual, but it is delivered to a participant only when a "send"
// action names it: a sequential or conditional message must not go to every
// recipient at once. The driver persists the new State (State.Version grows
// by one with every change, for conditional writes) together with the
// actions, then performs them:
//
//   - send: deliver the coordination message, unchanged, to Action.To.
//   - schedule_timeout / cancel_timeout: arm or drop the durable timer for
//     the workflow deadline; when it fires, Apply an EventTimeout.
//   - result: submit ResultMessage(state, domain, now) to the initiator.
//
// A reply is an AMTP message with in_reply_to = the workflow id and
// response_type workflow_response or workflow_error; ReplyEvent builds its
// Event. A permanent delivery failure to a participant is Applied as
// DeliveryFailedEvent.
//
// # Decisions where the draft and PROTOCOL.md are silent
//
// Participants and recipients. The message's recipients are the envelope
// that the accept path checked (policy, relaying), so the coordination may
// only name recipients, and — for sequential and conditional workflows —
// every recipient must be named by the coordination, since there would be no
// telling when an unnamed one should receive the message. Violations are a
// 400 COORDINATION_FAILED with details.field. Each address receives the
// coordination message at most once; its one answer is used wherever the
// workflow needs it. Members that belong to another type (a sequence on a
// parallel workflow, stop_on_failure on a conditional one) are refused rather
// than silently ignored.
//
// Deadline. timeout bounds the whole workflow. Without one the workflow gets
// amtp.MaxCoordinationTimeout (7 days, the delivery retry window), so that no
// workflow lives forever. Time is judged by Event.At, not by when the timer
// fires: any event at or after the deadline first times the workflow out, so
// the outcome does not depend on timer latency and both drivers agree.
//
// parallel. Everyone is asked at once. With required_responses, those must
// answer and every other recipient is optional; without it, every recipient
// not listed in optional_responses is required. A workflow where nobody is
// required is refused (400): it could only end by timing out. The workflow
// completes as soon as every required participant has answered; it fails at
// once when a required participant answers workflow_error or cannot be
// delivered to, because the required set can then never all succeed.
// Optional participants' answers and failures are recorded and never decide
// anything.
//
// sequential. The sequence is the participant list, in order; an address may
// appear only once. The next participant is asked only after the previous one
// answered. A failure (workflow_error or delivery failure) with
// stop_on_failure ends the workflow as failed; without it the failure is
// recorded and the sequence goes on, and the workflow ends completed after
// the last participant — the result shows who failed.
//
// conditional. One or more conditions are evaluated in order. For each: its
// participant is asked (unless it has already answered), its answer decides
// the branch, the branch's addresses are asked, and once they have all
// answered the next condition starts. An empty branch is passed at once. The
// workflow completes after the last condition. Any failure — of a condition's
// participant or of a branch participant — fails the workflow: a condition
// cannot be judged on an error, and quietly taking the else branch could
// execute an action nobody approved.
//
// Conditions. The text form is
//
//	<address> responds with <path> <op> <value>
//
// ("responds with" in any case). path is dotted (approve, result.score;
// a numeric segment indexes an array), op is one of = == != > >= < <= (==
// is the same as =), value is a JSON literal (true, false, null, a number, a
// "quoted string") or a bare word without spaces, taken as a string. Objects
// and arrays are refused, and so are words that are almost literals (True,
// NULL, 01, +1, .5) because they would silently compare as strings. The
// structured form is {"participant", "path", "op", "value"}. Evaluation
// never fails: = is true only for equal values of the same JSON type (numbers
// compare exactly as decimals, so 1.0 = 1); != is its negation; > >= < <=
// need two numbers and are false otherwise (an ordering operator with a
// non-numeric literal is refused at submission); a missing path, or a payload
// that is not JSON, makes every operator false. Bad conditions are refused
// by Start with details.field pointing at coordination.conditions[i].if (or
// .if.<member> for the structured form).
//
// Replies. A reply from an address that is not a participant is rejected
// with ErrNotParticipant, and one from a participant that has not been sent
// the message (a later sequence member, an untaken branch) with ErrNotAsked;
// both also carry a 403 FORBIDDEN *amtp.Error. Duplicate answers (the first
// answer wins), answers after the end, and early timer firings are ignored:
// Apply returns the state unchanged, no actions, and an error matching
// ErrIgnored so the caller can log it and answer success.
//
// The end. A terminal Apply emits exactly one "result" and one
// "cancel_timeout" action. Participants still waiting become timed_out when
// the workflow timed out and skipped otherwise; participants never asked
// become skipped.
//
// Result message. It comes from postmaster@<gateway domain>: the gateway
// itself speaks, and the delivery worker never sends failure reports about
// postmaster mail, so an unreachable initiator cannot cause a loop. Its
// message_id and idempotency_key are derived from the initiator and the
// workflow id, so that a driver that repeats the final step submits the same
// message and the accept path de-duplicates it.
package workflow
