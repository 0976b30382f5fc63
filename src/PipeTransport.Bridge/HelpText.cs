namespace PipeTransport.Bridge;

/// <summary>The address grammar and examples shown after the generated option list.</summary>
internal static class HelpText
{
    public const string Description =
        "Copies bytes both ways between two addresses, like socat, on PipeTransport (epoll, splice).";

    public const string Grammar = """
        Addresses:
          fifo:PATH              named pipe; created with mode 0600 if missing (and removed on exit
                                 if pipebridge created it). A FIFO carries one direction: use -u,
                                 or fifo:IN!!fifo:OUT for both.
          stdio                  standard input and standard output (also '-')
          fd:N                   an inherited file descriptor (e.g. fd:3)
          file:PATH              a file: read from it, or create/truncate it when written to
          unix:PATH              connect to a Unix stream socket
          unix-listen:PATH       listen on a Unix stream socket (mode 0600, removed on exit)
          tcp:HOST:PORT          connect over TCP (IPv6 as [::1]:PORT)
          tcp-listen:PORT        listen on TCP, all IPv4 interfaces
          tcp-listen:HOST:PORT   listen on TCP on HOST (PORT 0 picks a free port; see -d -d)
          A!!B                   read from address A, write to address B

        Without --fork a listen address accepts one connection. With --fork ADDRESS1 must be a
        listen address; every accepted connection is bridged to a freshly opened ADDRESS2.
        Half-close is propagated: EOF in one direction shuts down the other side's write half,
        and the other direction keeps flowing until its own EOF.

        Exit codes: 0 both directions ended cleanly, 1 I/O error (the address and errno are
        named on stderr), 2 usage error, 130/143 stopped by SIGINT/SIGTERM.

        Examples:
          d=$(mktemp -d)
          pipebridge -u fifo:$d/in fifo:$d/out &           # FIFO to FIFO
          seq 3 > $d/in & cat $d/out
          pipebridge -u --stats fifo:$d/in tcp-listen:127.0.0.1:9000
          pipebridge unix-listen:$d/app.sock tcp:127.0.0.1:8080
          pipebridge --fork tcp-listen:8022 unix:$d/app.sock
          pipebridge stdio tcp:example.org:80
          pipebridge -u -b 1m fifo:$d/in file:$d/copy
        """;
}
