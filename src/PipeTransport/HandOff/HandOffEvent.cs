namespace PipeTransport.HandOff;

/// <summary>What a <see cref="HandOffEvent"/> reports.</summary>
public enum HandOffEventKind
{
    /// <summary>A peer of another user connected and was refused (<c>SO_PEERCRED</c> uid differs from ours).</summary>
    Refused,

    /// <summary>A successor failed or went away before it committed: this process resumed and keeps serving.</summary>
    Aborted,

    /// <summary>A successor committed: it serves the offered listeners and FIFOs from now on.</summary>
    Committed,
}

/// <summary>An event of a <see cref="HandOffServer"/> (see <see cref="HandOffServerOptions.Events"/>).</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Peer">The peer process, when the kernel told us who it is.</param>
/// <param name="Detail">What happened, in words (e.g. <c>refused uid 65534</c>).</param>
/// <param name="Error">The error that ended an aborted hand-off, if any.</param>
public readonly record struct HandOffEvent(HandOffEventKind Kind, PeerCredentials? Peer, string Detail, Exception? Error);
