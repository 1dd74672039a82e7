// Package matrix is the bridge logic between Sandcat and Matrix, on top of
// the appservice package (the homeserver-facing API) and mautrix-go's
// client-server client:
//
//   - A Sandcat group is bridged to a Matrix room (its portal), created on
//     demand by the bridge bot with the alias #<alias_prefix><group id>:<server>
//     (EnsurePortal, or a homeserver query of that alias).
//   - Sandcat → Matrix: HandleRecords is a consumer of the message bus (its
//     own consumer group). A group message of a bridged group is sent into
//     the portal by the sender's puppet @<user_prefix><user id>:<server>,
//     registered on demand with the user's name as display name, with the
//     Sandcat send_time as origin_server_ts (ts massaging) and the
//     transaction id "sandcat-<server_id>", so a retried send never
//     duplicates. The server_id ↔ event id mapping is stored.
//   - Matrix → Sandcat: HandleEvents receives the homeserver's events. A
//     Matrix user who joins or speaks in a portal becomes a Sandcat user of
//     its own (no password, account = its Matrix ID, linked by a puppet row
//     with FromMatrix set) and a member of the group; its messages enter the
//     Sandcat pipeline as GroupMsg from that user.
//   - Echoes are dropped on both sides: events whose sender is in the
//     bridge's user namespace, and bus messages sent by Matrix users.
//
// Sandcat user and group ids may hold upper-case letters and '_', which
// Matrix localparts cannot: puppet localparts and alias localparts carry the
// id encoded with id.EncodeUserLocalpart (upper case as "_x", "_" as "__").
package matrix
