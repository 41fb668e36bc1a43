package main

// The command-line settings the server and hub modes share.

import (
	"flag"
	"fmt"
	"io"
	"time"

	"syncproto/interop/go/syncproto"
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
	// Snapshot checksums for clients that ask (SupportsChecksum): one right
	// after the in-sync that ends the initial sync, then after a batch of
	// deltas at most once per checksumInterval (0: after every batch).
	// noChecksums never offers them (the hello answers false).
	checksumInterval time.Duration
	noChecksums      bool
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
	fs.DurationVar(&c.checksumInterval, "checksum-interval", 30*time.Second,
		"snapshot checksums for clients that ask: after the initial in-sync, then after deltas at most once per this (0 = after every batch; new layout)")
	fs.BoolVar(&c.noChecksums, "no-checksums", false, "never offer snapshot checksums (the ServerHello answers SupportsChecksum false)")
}

// check validates the shared flags; false (with the reason on stderr)
// means a bad command line.
func (c *commonServerFlags) check(mode string, stderr io.Writer) bool {
	if c.checksumInterval < 0 {
		fmt.Fprintf(stderr, "%s: --checksum-interval must be >= 0 (use --no-checksums to disable them)\n", mode)
		return false
	}
	return true
}

// checksumSchedule is the checksum schedule for a client whose hello is
// hello (nil: it gets none).
func (c *commonServerFlags) checksumSchedule(hello syncproto.MsgClientHello) *checksumSchedule {
	return newChecksumSchedule(!c.noChecksums, syncproto.ClientWantsChecksums(hello), c.checksumInterval)
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
