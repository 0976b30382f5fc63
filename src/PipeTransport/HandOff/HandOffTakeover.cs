namespace PipeTransport.HandOff;

/// <summary>
/// What a predecessor offered (<see cref="HandOffClient.TakeOverAsync"/>). Take the listeners, start
/// serving, then <see cref="CommitAsync"/>; FIFO readers are taken after the commit. Whatever is not
/// taken is closed on dispose.
/// </summary>
public sealed class HandOffTakeover : IAsyncDisposable
{
    private HandOffTakeover()
    {
    }

    /// <summary>The names of what was offered.</summary>
    public IReadOnlyCollection<string> Names => throw new NotImplementedException();

    /// <summary>
    /// Adopts the listener offered under <paramref name="name"/>. It accepts at once: the predecessor
    /// accepts from the same sockets until the commit, and the kernel hands each client to one of us.
    /// </summary>
    /// <param name="name">The offered name.</param>
    /// <param name="options">Options of the adopted listener (only connection options, reactors and fd headroom apply).</param>
    /// <returns>The listener, or null when nothing was offered under that name.</returns>
    /// <exception cref="InvalidOperationException">It was already taken, or the name is a FIFO reader.</exception>
    public FdListener? TakeListener(string name, FdListenerOptions? options = null) => throw new NotImplementedException();

    /// <summary>
    /// Tells the predecessor to let go: it stops accepting, ends its FIFO inputs and answers. Completes
    /// when it answered, or when it is gone (it no longer reads either way).
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait (not the commit, once sent).</param>
    /// <returns>A task that completes when FIFO readers are ours.</returns>
    /// <exception cref="PipeTransportException">The commit could not be sent.</exception>
    public Task CommitAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Adopts the FIFO reader offered under <paramref name="name"/> (with its spare writer); only after <see cref="CommitAsync"/>.</summary>
    /// <param name="name">The offered name.</param>
    /// <param name="options">Connection options.</param>
    /// <returns>The connection (its Input reads the FIFO), or null when nothing was offered under that name.</returns>
    /// <exception cref="InvalidOperationException">Before the commit, already taken, or the name is a listener.</exception>
    public FdConnection? TakeConnection(string name, FdConnectionOptions? options = null) => throw new NotImplementedException();

    /// <summary>Completes when the hand-off socket reached EOF after the commit: the predecessor closed its server or exited.</summary>
    public Task PredecessorExited => throw new NotImplementedException();

    /// <summary>Before the commit the predecessor resumes; every fd not taken is closed.</summary>
    /// <returns>A task that completes when everything is closed.</returns>
    public ValueTask DisposeAsync() => throw new NotImplementedException();
}
