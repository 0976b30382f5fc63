using System.Net.Sockets;

namespace PipeTransport.Bridge;

/// <summary>One side of the bridge, as written on the command line (socat-like grammar).</summary>
internal abstract record Address(string Text)
{
    /// <summary>True for addresses that wait for peers (<c>unix-listen</c>, <c>tcp-listen</c>).</summary>
    public virtual bool IsListener => false;

    /// <summary>Whether the bridge can read from this address (false for write-only ones such as <c>stdout</c>).</summary>
    public virtual bool CanRead => true;

    /// <summary>Whether the bridge can write to this address.</summary>
    public virtual bool CanWrite => true;

    /// <summary>The options after the address's commas (<c>tcp-listen:8080,reuseaddr</c>).</summary>
    public AddressOptions Options { get; init; } = AddressOptions.None;

    public sealed override string ToString() => Text;
}

/// <summary>
/// <c>fifo:PATH</c>: a named pipe, created with mode 0600 if missing. socat's <c>pipe:PATH</c> is the
/// same, but used both ways it is an echo (<see cref="EchoWhenBoth"/>): the bridge writes to it and
/// reads back what it wrote.
/// </summary>
internal sealed record FifoAddress(string Text, string Path, bool EchoWhenBoth = false) : Address(Text);

/// <summary>socat's bare <c>pipe</c>: an anonymous pipe, written and read back (an echo).</summary>
internal sealed record AnonymousPipeAddress(string Text) : Address(Text);

/// <summary><c>stdio</c>: read stdin (fd 0), write stdout (fd 1); <see cref="Reads"/>/<see cref="Writes"/> narrow it to one.</summary>
internal sealed record StdioAddress(string Text, bool Reads = true, bool Writes = true) : Address(Text)
{
    public override bool CanRead => Reads;

    public override bool CanWrite => Writes;
}

/// <summary><c>fd:N</c>: an inherited file descriptor.</summary>
internal sealed record FdAddress(string Text, int Fd) : Address(Text);

/// <summary>A file (or device) opened with open(2); <see cref="Kind"/> says which flags come by default.</summary>
internal sealed record FileAddress(string Text, string Path, FileKind Kind = FileKind.File) : Address(Text)
{
    public override bool CanRead => Kind != FileKind.Create;
}

/// <summary>How a file address opens its path when no option says otherwise.</summary>
internal enum FileKind
{
    /// <summary><c>file:</c> reads it as it is, creates it when written to, truncates it when only written.</summary>
    File,

    /// <summary>socat's <c>open:</c>: open(2) with only the flags the options give.</summary>
    Open,

    /// <summary>socat's <c>gopen:</c>: connects to a Unix socket, else opens with O_APPEND when written, creating it if missing.</summary>
    GOpen,

    /// <summary>socat's <c>create:</c>: creat(2), write only.</summary>
    Create,
}

/// <summary><c>unix:PATH</c>: connect to a Unix stream socket.</summary>
internal sealed record UnixConnectAddress(string Text, string Path) : Address(Text);

/// <summary><c>unix-listen:PATH</c>: listen on a Unix stream socket.</summary>
internal sealed record UnixListenAddress(string Text, string Path) : Address(Text)
{
    public override bool IsListener => true;
}

/// <summary>
/// <c>accept-fd:N</c> (socat 1.8's name): accept connections on a listening socket inherited as fd N,
/// as systemd socket activation passes it. Without N, the first fd of <c>LISTEN_FDS</c> (fd 3).
/// </summary>
internal sealed record AcceptFdAddress(string Text, int Fd) : Address(Text)
{
    public override bool IsListener => true;
}

/// <summary><c>tcp:HOST:PORT</c>: connect over TCP; <c>tcp4:</c>/<c>tcp6:</c> set <see cref="Family"/>.</summary>
internal sealed record TcpConnectAddress(string Text, string Host, int Port, AddressFamily? Family = null) : Address(Text);

/// <summary>
/// <c>tcp-listen:[HOST:]PORT</c>: listen on TCP (all IPv4 interfaces when HOST is omitted, all IPv6
/// ones for <c>tcp6-listen:</c>).
/// </summary>
internal sealed record TcpListenAddress(string Text, string? Host, int Port, AddressFamily? Family = null) : Address(Text)
{
    public override bool IsListener => true;
}

/// <summary>
/// <c>exec:PROGRAM ARGS</c> (split into words here, no shell) or <c>system:COMMAND</c> (run by
/// <c>/bin/sh -c</c>): a child process whose stdin and stdout are the address.
/// </summary>
internal sealed record ExecAddress(string Text, IReadOnlyList<string> Arguments, bool Shell) : Address(Text);

/// <summary><c>A!!B</c>: read from <see cref="Read"/>, write to <see cref="Write"/>.</summary>
internal sealed record SplitAddress(string Text, Address Read, Address Write) : Address(Text)
{
    public override bool IsListener => Read.IsListener;

    public override bool CanRead => Read.CanRead;

    public override bool CanWrite => Write.CanWrite;
}
