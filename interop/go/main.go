// Command go-peer is the Go reference peer for syncproto's interop tests: a
// small Typha-protocol server and client built on Go's encoding/gob (what
// upstream Typha and Felix use), plus generators and decoders of captured
// streams. See README.md for the modes, flags and output formats.
//
// Two builds exist: the newest upstream field layout (default) and the
// v3.2.5 one (go build -tags v325).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"syncproto/interop/go/syncproto"
)

const usage = `usage: go-peer <mode> [flags]

modes:
  server   serve a snapshot (and updates) to exactly one client
  hub      serve any number of clients from a store fed over stdin (a Typha stand-in)
  client   connect, follow the stream to EOF, report what arrived
  golden   write golden vectors (raw gob streams + JSON descriptions)
  decode   decode a captured server->client stream

run "go-peer <mode> -h" for a mode's flags. Layout of this build: ` + syncproto.LayoutName + "\n"

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // protocol, I/O or decode failure ({"ok":false,...} on stdout where the mode has a summary)
	exitUsage = 2 // bad command line
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "server":
		return serverMain(args[1:], stdout, stderr)
	case "hub":
		return hubMain(args[1:], os.Stdin, stdout, stderr)
	case "client":
		return clientMain(args[1:], stdout, stderr)
	case "golden":
		return goldenMain(args[1:], stdout, stderr)
	case "decode":
		return decodeMain(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "go-peer: unknown mode %q\n\n%s", args[0], usage)
	return exitUsage
}

// printJSON writes v as one JSON line.
func printJSON(w io.Writer, v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]interface{}{"ok": false, "error": "encoding output: " + err.Error()})
	}
	w.Write(append(b, '\n'))
}

// failJSON prints {"ok":false,"layout":...,"error":...} and returns exitFail.
func failJSON(w io.Writer, err error) int {
	printJSON(w, ordered{{"ok", false}, {"layout", syncproto.LayoutName}, {"error", err.Error()}})
	return exitFail
}
