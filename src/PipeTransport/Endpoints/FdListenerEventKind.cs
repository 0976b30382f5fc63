namespace PipeTransport;

/// <summary>What an <see cref="FdListenerEvent"/> reports.</summary>
internal enum FdListenerEventKind
{
    /// <summary><c>accept4</c> failed with <see cref="FdListenerEvent.Errno"/> (other than <c>EAGAIN</c>).</summary>
    AcceptError,

    /// <summary>Accepting paused at the fd limit: <c>accept4</c> reported <see cref="FdListenerEvent.Errno"/>, or (0) too few fds were free.</summary>
    FdLimitEntered,

    /// <summary>Accepting resumed after <see cref="FdListenerEvent.Duration"/> at the fd limit.</summary>
    FdLimitLeft,
}
