package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/sandcat-im/sandcat/appservice"
)

// writeRegistration runs `sandcat appservice registration [flags]` (args
// start with "registration"): it writes a Matrix registration file with fresh
// tokens, never over an existing file unless -force, and prints the matching
// `appservice:` config section on stdout.
func writeRegistration(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintf(stderr, "usage: sandcat appservice registration [-o registration.yaml] [-url http://host:port] "+
			"-server-name <homeserver server_name> [-homeserver-url http://host:8008] [-force]\n")
	}
	if len(args) == 0 || args[0] != "registration" {
		usage()
		return 2
	}
	set := flag.NewFlagSet("sandcat appservice registration", flag.ContinueOnError)
	set.SetOutput(stderr)
	set.Usage = func() { usage(); set.PrintDefaults() }
	out := set.String("o", "registration.yaml", "file to write")
	force := set.Bool("force", false, "overwrite the file if it exists")
	var o appservice.RegistrationOptions
	set.StringVar(&o.URL, "url", "http://127.0.0.1:29400", "URL at which the homeserver reaches the bridge")
	set.StringVar(&o.ServerName, "server-name", "", "server name of the homeserver, its server_name (the part after ':' in user ids); required")
	hsURL := set.String("homeserver-url", "http://127.0.0.1:8008", "client-server API URL of the homeserver (config only)")
	set.StringVar(&o.ID, "id", "sandcat", "registration id")
	set.StringVar(&o.SenderLocalpart, "sender-localpart", "sandcatbot", "localpart of the bridge bot")
	set.StringVar(&o.UserPrefix, "user-prefix", "sandcat_", "localpart prefix of Sandcat users on Matrix")
	set.StringVar(&o.AliasPrefix, "alias-prefix", "sandcat_", "alias prefix of bridged Sandcat groups")
	if err := set.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if set.NArg() > 0 {
		fmt.Fprintf(stderr, "sandcat appservice registration: unexpected argument %q\n", set.Arg(0))
		usage()
		return 2
	}
	if o.ServerName == "" {
		fmt.Fprintln(stderr, "sandcat appservice registration: -server-name is required: the homeserver's server_name "+
			"(the part after ':' in its user ids, e.g. example.org); the namespaces are made for it")
		usage()
		return 2
	}
	reg, err := appservice.NewRegistration(o)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	body, err := appservice.MarshalRegistration(reg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	section, err := appservice.MarshalConfigSection(appservice.NewConfigSection(reg, o, *hsURL))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(*out, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		fmt.Fprintf(stderr, "sandcat appservice registration: %s exists; not overwritten (use -force)\n", *out)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "sandcat appservice registration: %v\n", err)
		return 1
	}
	if _, err := f.Write(body); err != nil {
		_ = f.Close()
		fmt.Fprintf(stderr, "sandcat appservice registration: write %s: %v\n", *out, err)
		return 1
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(stderr, "sandcat appservice registration: write %s: %v\n", *out, err)
		return 1
	}
	fmt.Fprintf(stdout, "# %s written. Add this section to config.yml (it holds the same secrets):\n", *out)
	_, _ = stdout.Write(section)
	return 0
}
