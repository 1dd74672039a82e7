package blob

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/sandcat-im/sandcat/storage"
)

//go:generate go run gen_defaults.go

//go:embed defaults/avatar1.png defaults/avatar2.png defaults/avatar3.png
var defaultAvatars embed.FS

// DefaultAvatarNames are the avatars every installation has in the Avatars
// bucket (the client offers them at registration).
func DefaultAvatarNames() []string {
	return []string{"avatar1.png", "avatar2.png", "avatar3.png"}
}

// DefaultAvatar returns the PNG bytes of one of DefaultAvatarNames.
func DefaultAvatar(name string) ([]byte, error) {
	for _, n := range DefaultAvatarNames() {
		if n == name {
			return defaultAvatars.ReadFile("defaults/" + n)
		}
	}
	return nil, fmt.Errorf("blob: %q is not a default avatar: %w", name, storage.ErrNotFound)
}

// InstallDefaults puts each default avatar into the Avatars bucket of s when
// no object of that name exists there; existing objects are left alone.
func InstallDefaults(ctx context.Context, s Store) error {
	for _, name := range DefaultAvatarNames() {
		rc, _, err := s.Get(ctx, Avatars, name)
		if err == nil {
			_ = rc.Close()
			continue
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("blob: check default avatar %s: %w", name, err)
		}
		data, err := DefaultAvatar(name)
		if err != nil {
			return err
		}
		if err := s.Put(ctx, Avatars, name, "image/png", bytes.NewReader(data), int64(len(data))); err != nil {
			return fmt.Errorf("blob: install default avatar %s: %w", name, err)
		}
	}
	return nil
}
