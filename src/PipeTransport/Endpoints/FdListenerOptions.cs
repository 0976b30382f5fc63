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

    /// <summary>Options of accepted connections.</summary>
    public FdConnectionOptions? ConnectionOptions { get; set; }

    /// <summary>The reactors for the listener and its connections (default: the connection options' group, else <see cref="ReactorGroup.Default"/>).</summary>
    public ReactorGroup? ReactorGroup { get; set; }
}
