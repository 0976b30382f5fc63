namespace PipeTransport.Bridge;

/// <summary>The address grammar and examples shown after the generated option list.</summary>
internal static class HelpText
{
    public const string Description =
        "Copies bytes both ways between two addresses, like socat, on PipeTransport (epoll, splice).";

    public const string Grammar = """
        Addresses (keywords in any case; socat's spellings in brackets):
          stdio | -              stdin and stdout
          stdin, stdout          only one of them
          fd:N | N               an inherited fd (e.g. fd:3 or 3)
          fifo:PATH              named pipe, created mode 0600 if missing (removed on exit if
                                 pipebridge created it); one direction: -u, or fifo:IN!!fifo:OUT
          pipe:PATH              the same, but used both ways it is an echo (socat's PIPE:)
          pipe                   an anonymous pipe: what is written to it is read back
          file:PATH              read it; written to, it is created (and truncated when only written)
          open:PATH              open(2) with only the flags the options give (socat's OPEN)
          gopen:PATH | /PATH     a Unix socket is connected, a FIFO opened as pipe:PATH; else
                                 opened, appending, created if missing
          create:PATH            created or truncated, written only
          unix-connect:PATH      connect to a Unix stream socket  [unix:, unix-client:]
          unix-listen:PATH       listen on a Unix stream socket (mode 0600, removed on exit)
          tcp:HOST:PORT          connect over TCP, IPv6 as [::1]:PORT  [tcp-connect:, tcp4:, tcp6:]
          tcp-listen:[HOST:]PORT listen on TCP, all IPv4 interfaces without HOST  [tcp4-listen:,
                                 tcp6-listen:]; PORT 0 picks a free port (see -d -d)
          accept-fd:[N]          accept on an inherited listening socket (systemd socket
                                 activation: without N, fd 3 from LISTEN_FDS)
          exec:PROGRAM ARGS      run PROGRAM (words split here, quotes group them; no shell) on its
                                 stdin and stdout; a non-zero exit status fails the session
          system:COMMAND         the same with /bin/sh -c COMMAND
          A!!B                   read from address A, write to address B

        Address options, after commas (tcp-listen:8080,reuseaddr,fork):
          fork                   listen addresses: serve many connections, as --fork
          reuseaddr[=0|1]        tcp-listen: SO_REUSEADDR (on by default)
          bind=HOST              tcp-listen: the host to listen on
          backlog=N              tcp-listen, unix-listen: the listen(2) backlog
          mode=OCTAL             permissions of a file, FIFO or socket file pipebridge creates
          user=NAME|UID          owner of the file, FIFO or socket file
          group=NAME|GID         group of the file, FIFO or socket file
          unlink-early           remove what is at the path first (file, FIFO, unix-listen)
          creat, excl, append, trunc   open(2) flags of file, open, gopen and create
        An unknown option, or one the address type does not take, is a usage error.

        Without --fork a listen address accepts one connection. With --fork ADDRESS1 must be a
        listen address; every accepted connection is bridged to a freshly opened ADDRESS2.
        With --handoff PATH (ADDRESS1 tcp-listen: or unix-listen:, with or without fork), a new
        pipebridge started with the same PATH and ADDRESS1 takes the listening socket over from the
        running one: no client is refused; the old one stops accepting, lets its sessions end and
        exits 0. PATH is a socket of mode 0600: only the same user can take over.
        Half-close is propagated: EOF in one direction shuts down the other side's write half,
        and the other direction keeps flowing until its own EOF (or -t).

        Exit codes: 0 both directions ended cleanly (or -T/-t ended the session), 1 I/O error or
        a child's non-zero exit (the address and errno or status are named on stderr), 2 usage
        error, 130/143 stopped by SIGINT/SIGTERM.

        Examples:
          d=$(mktemp -d)
          pipebridge -u fifo:$d/in fifo:$d/out &           # FIFO to FIFO
          seq 3 > $d/in & cat $d/out
          pipebridge -u --stats fifo:$d/in tcp-listen:127.0.0.1:9000
          pipebridge unix-listen:$d/app.sock tcp:127.0.0.1:8080
          pipebridge -d -d tcp-listen:8022,reuseaddr,fork unix:$d/app.sock
          pipebridge tcp-listen:8023,fork exec:./handler
          pipebridge --handoff $d/bridge.handoff tcp-listen:8024,fork unix:$d/app.sock   # run again to upgrade
          pipebridge stdio tcp:example.org:80
          pipebridge -u -b 1m fifo:$d/in file:$d/copy
        """;
}
