// Package matrix is the bridge logic between Sandcat and Matrix, on top of
// the appservice package (the homeserver-facing API) and mautrix-go's
// client-server client. docs/matrix-bridge.md is the user's reference.
//
//   - A Sandcat group is bridged to a Matrix room (its portal), created on
//     demand by the bridge bot with the alias #<alias_prefix><group id>:<server>
//     (EnsurePortal, or a homeserver query of that alias), or an existing
//     room plumbed into it (Plumb, plumb.go). The members' puppets join it.
//   - Sandcat → Matrix (tomatrix.go): HandleRecords is a consumer of the
//     message bus (its own consumer group). Messages of bridged groups (and
//     chats with Matrix users, as DMs) are sent into their rooms by the
//     sender's puppet @<user_prefix><user id>:<server>, with the Sandcat
//     send_time as origin_server_ts and the transaction id
//     "sandcat-<server_id>", so a retried send never duplicates. A batch is
//     sent to up to 16 rooms at once, each room strictly in bus order
//     (parallel.go). The server_id ↔ event id mapping is stored.
//   - Matrix → Sandcat (frommatrix.go): HandleEvents receives the
//     homeserver's events. A Matrix user who joins or speaks in a portal
//     becomes a Sandcat user of its own (no password, account = its Matrix
//     ID, linked by a puppet row with FromMatrix set) and a member of the
//     group; its messages enter the Sandcat pipeline keyed by their event id
//     (the same event always makes the same server_id, stored once).
//   - media.go copies files and avatars between the blob store and the
//     homeserver's media repository; roomstate.go carries name, topic and
//     membership; edits.go shows Matrix edits and redactions as messages
//     quoting the original; commands.go is the bot (management room,
//     help/ping/bridge/unbridge).
//   - Echoes are dropped on both sides: events whose sender is in the
//     bridge's user namespace, and bus messages sent by Matrix users.
//
// Sandcat user and group ids may hold upper-case letters and '_', which
// Matrix localparts cannot: puppet localparts and alias localparts carry the
// id encoded with id.EncodeUserLocalpart (upper case as "_x", "_" as "__").
package matrix
