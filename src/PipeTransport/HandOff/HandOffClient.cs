namespace PipeTransport.HandOff;

/// <summary>The successor's side of a hand-off.</summary>
public static class HandOffClient
{
    /// <summary>
    /// Connects to the <see cref="HandOffServer"/> at <paramref name="path"/> and receives what it offers.
    /// The predecessor keeps serving until <see cref="HandOffTakeover.CommitAsync"/>.
    /// </summary>
    /// <param name="path">The hand-off socket.</param>
    /// <param name="cancellationToken">Cancels the hand-off (the predecessor resumes).</param>
    /// <returns>The offer, or null when nothing serves at <paramref name="path"/> (<c>ENOENT</c>, <c>ECONNREFUSED</c>): a first start.</returns>
    /// <exception cref="PipeTransportException">Any other error (not a socket, <c>EACCES</c>, <c>ENAMETOOLONG</c>, a refused peer, a malformed answer), naming the path.</exception>
    public static Task<HandOffTakeover?> TakeOverAsync(string path, CancellationToken cancellationToken = default) => throw new NotImplementedException();
}
