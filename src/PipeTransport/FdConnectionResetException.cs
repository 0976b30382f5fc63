using Mono.Unix.Native;

namespace PipeTransport;

/// <summary>
/// The peer went away while data was moving: <c>EPIPE</c> (it closed its read end) or
/// <c>ECONNRESET</c> (it reset the connection), or <c>ENOTCONN</c> from the half-close after a reset.
/// Surfaces through <c>Output</c> (and, for a reset, through <c>Input</c>), or from
/// <see cref="FdConnection.DisposeAsync"/> when no flush reported it.
/// </summary>
public sealed class FdConnectionResetException : PipeTransportException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="errno"><c>EPIPE</c>, <c>ECONNRESET</c> or <c>ENOTCONN</c>.</param>
    /// <param name="operation">The operation that failed.</param>
    /// <param name="target">The fd or endpoint.</param>
    public FdConnectionResetException(Errno errno, string operation, string? target)
        : base(errno, operation, target)
    {
    }
}
