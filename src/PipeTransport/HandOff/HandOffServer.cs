using System.Runtime.InteropServices;

namespace PipeTransport.HandOff;

/// <summary>
/// Offers this process's listeners and FIFO read ends to a successor process of the same user
/// through a <c>SOCK_SEQPACKET</c> Unix socket. The successor adopts them, commits, and this process
/// then stops accepting, ends its FIFO inputs where it stopped reading, and completes
/// <see cref="HandedOff"/>: the application drains what it has and exits. Until the commit nothing
/// changes here, so a successor that fails or dies leaves this process serving.
/// </summary>
public sealed class HandOffServer : IAsyncDisposable
{
    private HandOffServer()
    {
    }

    /// <summary>
    /// Binds the hand-off socket at <paramref name="path"/> (under a temporary name in the same
    /// directory, mode 0600, then renamed over <paramref name="path"/>, so a successor's server
    /// replaces ours atomically) and serves one successor at a time.
    /// </summary>
    /// <param name="path">The socket's path.</param>
    /// <param name="options">Options.</param>
    /// <returns>The server.</returns>
    /// <exception cref="PipeTransportException"><c>ENOENT</c> (missing directory), <c>EACCES</c>, <c>ENAMETOOLONG</c>, ... naming the path.</exception>
    public static HandOffServer Start(string path, HandOffServerOptions? options = null) => throw new NotImplementedException();

    /// <summary>
    /// Offers every socket of <paramref name="listener"/> (all of an <c>SO_REUSEPORT</c> group) under
    /// <paramref name="name"/>. After a commit the listener stops accepting (a pending accept returns
    /// null) and its disposal leaves the Unix socket file to the successor.
    /// </summary>
    /// <param name="name">The name the successor asks for.</param>
    /// <param name="listener">The listener.</param>
    /// <exception cref="ArgumentException">The name is already offered, empty, or longer than 255 bytes.</exception>
    public void Offer(string name, FdListener listener) => throw new NotImplementedException();

    /// <summary>
    /// Offers the read end of a FIFO: Input of <paramref name="fifoReader"/> (its Output is not offered).
    /// During a hand-off the connection stops reading (a read in flight finishes first); after a commit
    /// its Input ends where it stopped (the application reads what was read, then the end), otherwise
    /// it reads on.
    /// </summary>
    /// <param name="name">The name the successor asks for.</param>
    /// <param name="fifoReader">The connection whose Input reads the FIFO.</param>
    /// <param name="spareWriter">A write end of the same FIFO that keeps the reader from seeing EOF between writers; default the one the connection holds (<see cref="FdConnectionOptions.KeepFifoReaderOpen"/>).</param>
    /// <exception cref="ArgumentException">The name is already offered, empty, or longer than 255 bytes.</exception>
    public void Offer(string name, FdConnection fifoReader, SafeHandle? spareWriter = null) => throw new NotImplementedException();

    /// <summary>Completes when a successor committed: the caller then drains and exits. Never faults.</summary>
    public Task<HandOffCommitted> HandedOff => throw new NotImplementedException();

    /// <summary>
    /// Stops serving (a hand-off in progress is aborted: FIFO inputs resume) and removes the socket
    /// file if it is still ours (same inode: a successor's server may have replaced it).
    /// </summary>
    /// <returns>A task that completes when the server is closed.</returns>
    public ValueTask DisposeAsync() => throw new NotImplementedException();
}
