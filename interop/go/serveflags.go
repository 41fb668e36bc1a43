package main

// The command-line settings the server and hub modes share.

import (
	"flag"
	"fmt"
	"io"
	"time"
)

// commonServerFlags are the settings the server and hub modes both take,
// with the same flag names and defaults; serverConfig and hubConfig embed
// it. --ping-interval is not here: its default and its 0 differ by mode.
type commonServerFlags struct {
	listen           string
	compress         bool
	batch            int
	pongTimeout      time.Duration
	handshakeTimeout time.Duration
	writeTimeout     time.Duration
	moveRV           bool
	stateOut         string
}

// register defines the shared flags on fs. pongHelp is the mode's own
// description of --pong-timeout, whose meaning differs between the modes.
func (c *commonServerFlags) register(fs *flag.FlagSet, pongHelp string) {
	fs.StringVar(&c.listen, "listen", "127.0.0.1:0", "address to listen on")
	fs.BoolVar(&c.compress, "compress", false, "do the snappy decoder-restart dance with clients that support it (new layout)")
	fs.IntVar(&c.batch, "batch", 100, "KVs per message of an uncompressed snapshot")
	fs.DurationVar(&c.pongTimeout, "pong-timeout", 10*time.Second, pongHelp)
	fs.DurationVar(&c.handshakeTimeout, "handshake-timeout", 10*time.Second, "time allowed for the ClientHello")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 30*time.Second, "deadline for each write to a client")
	fs.BoolVar(&c.moveRV, "move-resource-versions", false, "move metadata.resourceVersion of /calico/resources/v3/ values into V3ResourceVersion, as upstream (new layout)")
	fs.StringVar(&c.stateOut, "state-out", "", "write the final store here (JSON lines, sorted by key)")
}

// parseNoArgs parses a mode's flags, which take no positional arguments. On
// false the mode exits with exitUsage (the flag package or this has already
// said why on stderr).
func parseNoArgs(fs *flag.FlagSet, args []string, stderr io.Writer) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return false
	}
	return true
}
