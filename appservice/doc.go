// Package appservice will hold the Matrix application-service API the
// homeserver calls (transactions, user and room queries, ping) for the
// Sandcat bridge. It is empty until the bridge issue lands.
package appservice
