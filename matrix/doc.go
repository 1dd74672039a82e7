// Package matrix will hold the Matrix side of the Sandcat bridge: puppets,
// portals (Sandcat groups as Matrix rooms) and media copying, built on
// maunium.net/go/mautrix. It is empty until the bridge issue lands.
package matrix
