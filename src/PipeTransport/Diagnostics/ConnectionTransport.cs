namespace PipeTransport.Diagnostics;

/// <summary>
/// What a connection runs over, as the metrics' <c>network.transport</c> tag says it (OpenTelemetry's
/// values: a FIFO is a named pipe, so <c>pipe</c> too).
/// </summary>
internal enum ConnectionTransport : byte
{
    /// <summary>Not known yet: the connection asks the fd.</summary>
    Unknown,

    /// <summary>An anonymous pipe or a FIFO.</summary>
    Pipe,

    /// <summary>A Unix domain socket (also a socketpair).</summary>
    Unix,

    /// <summary>A TCP socket (IPv4 or IPv6).</summary>
    Tcp,

    /// <summary>Anything else: a tty, a character device, a regular file, another socket family.</summary>
    Other,
}
