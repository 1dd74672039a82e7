package app_test

// The bridge suite against Dendrite v0.13.8 (testsvc.RunDendrite) instead
// of Synapse: the same test bodies and assertions, only the homeserver
// differs. docs/matrix-homeservers.md says what differs between the two
// homeservers and why. Not run on Dendrite: TestBridgeEditRedact (Dendrite
// never sends m.room.redaction events to appservices, so a Matrix redaction
// does not reach Sandcat).

import "testing"

func TestBridgeTextBothWaysDendrite(t *testing.T) {
	testBridgeTextBothWays(t, startBridgeEnvOn(t, onDendrite))
}

// Dendrite has no appservice ping: it resends what the bridge missed when
// its own backoff (2, 4 … 64 s) ends, not at once when the bridge is back.
func TestBridgeRestartDendrite(t *testing.T) {
	testBridgeRestart(t, startBridgeEnvOn(t, onDendrite))
}

func TestBridgePlumbRouteDendrite(t *testing.T) {
	testBridgePlumbRoute(t, startBridgeEnvOn(t, onDendrite))
}

func TestBridgeStateRoomProfileDendrite(t *testing.T) {
	testBridgeStateRoomProfile(t, startBridgeEnvOn(t, onDendrite))
}

func TestBridgeStateMembersDendrite(t *testing.T) {
	testBridgeStateMembers(t, startBridgeEnvOn(t, onDendrite))
}

func TestBridgeEditDMDendrite(t *testing.T) {
	testBridgeEditDM(t, startBridgeEnvOn(t, onDendrite))
}

func TestBridgePlumbCommandDendrite(t *testing.T) {
	testBridgePlumbCommand(t, startBridgeEnvOn(t, onDendrite))
}

func TestBridgeCommandsManagementRoomDendrite(t *testing.T) {
	testBridgeCommandsManagementRoom(t, startBridgeEnvOn(t, onDendrite))
}

func TestBridgeMediaSandcatToMatrixDendrite(t *testing.T) {
	testBridgeMediaSandcatToMatrix(t, startBridgeEnvOn(t, onDendrite))
}

func TestBridgeMediaMatrixToSandcatDendrite(t *testing.T) {
	testBridgeMediaMatrixToSandcat(t, startBridgeEnvOn(t, onDendrite))
}

func TestBridgeMediaAvatarsDendrite(t *testing.T) {
	testBridgeMediaAvatars(t, startBridgeEnvOn(t, onDendrite))
}
