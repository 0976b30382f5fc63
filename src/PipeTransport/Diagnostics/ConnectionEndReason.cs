namespace PipeTransport.Diagnostics;

/// <summary>
/// Why a connection ended, as the metrics' close-reason tag says it: the first of these to happen
/// counts (a reset that makes the connection abort itself is a reset, not an abort).
/// </summary>
internal enum ConnectionEndReason
{
    /// <summary>Nothing ended it yet.</summary>
    None,

    /// <summary>The peer closed first: Input read EOF.</summary>
    Eof,

    /// <summary>The peer reset the connection or stopped reading (<c>ECONNRESET</c>, <c>EPIPE</c>).</summary>
    Reset,

    /// <summary>The application called <see cref="FdConnection.Abort"/>.</summary>
    Aborted,

    /// <summary>The application closed it: disposed it, or completed both Input and Output.</summary>
    Disposed,

    /// <summary>Another I/O error ended a direction.</summary>
    Error,
}
