namespace PipeTransport;

/// <summary>Options of an <see cref="FdListener"/>.</summary>
public sealed class FdListenerOptions
{
    /// <summary>The <c>listen(2)</c> backlog. Default 512.</summary>
    public int Backlog { get; set; } = 512;

    /// <summary>Set <c>SO_REUSEADDR</c> on TCP listeners (rebinding a port in TIME_WAIT). Default true.</summary>
    public bool ReuseAddress { get; set; } = true;

    /// <summary>
    /// Set <c>SO_REUSEPORT</c> and open one listening socket per reactor of the group, so the kernel
    /// spreads incoming connections over them and each connection stays on its listener's reactor.
    /// </summary>
    public bool ReusePort { get; set; }

    /// <summary>Permissions of a Unix socket file, set before the socket accepts anyone. Default 0600.</summary>
    public UnixFileMode UnixSocketMode { get; set; } = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>The default of <see cref="FdHeadroom"/>: room for the runtime's threads and the application's files and connections.</summary>
    public const int DefaultFdHeadroom = 64;

    /// <summary>
    /// Accepting pauses while it would leave fewer than this many fds free under <c>RLIMIT_NOFILE</c>
    /// (at most a quarter of the limit is kept), so the runtime can still start threads (the .NET
    /// runtime aborts when it cannot) and the application can still open files and connections.
    /// Clients wait in the backlog meanwhile, and are accepted once fds are free again. 0 accepts until
    /// <c>accept4</c> reports <c>EMFILE</c>. Default <see cref="DefaultFdHeadroom"/>.
    /// </summary>
    public int FdHeadroom { get; set; } = DefaultFdHeadroom;

    /// <summary>
    /// Owner of a Unix socket file: a user name or a numeric uid, set (like the mode) before the socket
    /// accepts anyone. Null keeps the process's user. Giving a file away needs <c>CAP_CHOWN</c> (root).
    /// </summary>
    public string? UnixSocketOwner { get; set; }

    /// <summary>
    /// Group of a Unix socket file: a group name or a numeric gid, set before the socket accepts anyone,
    /// e.g. the group of a reverse proxy together with mode 0660. Null keeps the process's group. Without
    /// <c>CAP_CHOWN</c> a process can only choose a group it belongs to. Names are resolved before the
    /// socket is created: an unknown one is a <see cref="PipeTransportException"/> and leaves no file.
    /// </summary>
    public string? UnixSocketGroup { get; set; }

    /// <summary>Options of accepted connections.</summary>
    public FdConnectionOptions? ConnectionOptions { get; set; }

    /// <summary>The reactors for the listener and its connections (default: the connection options' group, else <see cref="ReactorGroup.Default"/>).</summary>
    public ReactorGroup? ReactorGroup { get; set; }

    /// <summary>
    /// Told when <c>accept4</c> fails and when accepting pauses at the fd limit and resumes (for metrics
    /// and logs). Called on the accepting thread; must not throw.
    /// </summary>
    internal Action<FdListenerEvent>? Events { get; set; }
}
