using PipeTransport.Interop;

namespace PipeTransport;

/// <summary>Named pipes (FIFOs).</summary>
public static class Fifo
{
    /// <summary>
    /// Creates a FIFO with exactly <paramref name="mode"/> (the umask does not apply; default 0600).
    /// </summary>
    /// <param name="path">Where to create it.</param>
    /// <param name="mode">Its permissions.</param>
    /// <exception cref="PipeTransportException"><c>EEXIST</c>, <c>ENOENT</c> (missing directory), <c>EACCES</c>, ...</exception>
    public static void Create(string path, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        int r = Sys.MakeFifo(path, mode);
        if (r < 0)
        {
            throw PipeTransportException.FromResult(r, "mkfifo", path);
        }

        // mkfifo applies the umask; the caller asked for an exact mode.
        r = Sys.Chmod(path, mode);
        if (r < 0)
        {
            Sys.Unlink(path);
            throw PipeTransportException.FromResult(r, "chmod", path);
        }
    }

    /// <summary>
    /// Opens one end of the FIFO at <paramref name="path"/> and waits, asynchronously and cancellably,
    /// for its peer the way a blocking <c>open(2)</c> would: a write end until the FIFO has a reader, a
    /// read end until a writer has opened it (from then on a read returns 0 only once the last writer
    /// has closed). No thread blocks in <c>open</c>.
    /// </summary>
    /// <param name="path">The FIFO.</param>
    /// <param name="access"><see cref="FileAccess.Read"/> or <see cref="FileAccess.Write"/>.</param>
    /// <param name="options">Only its <see cref="FdConnectionOptions.ReactorGroup"/> is used, for the wait.</param>
    /// <param name="cancellationToken">Cancels the wait; the fd opened so far is closed.</param>
    /// <returns>The fd, <c>O_NONBLOCK | O_CLOEXEC</c>, for <see cref="FdConnection.FromFd"/> or <see cref="FdConnection.FromFds"/>.</returns>
    /// <exception cref="PipeTransportException">
    /// <c>ENOENT</c>, <c>EACCES</c>, ... naming the path; <c>EISDIR</c> or <c>EINVAL</c> when the path is
    /// not a FIFO. These are checked before anything is opened.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="access"/> is <see cref="FileAccess.ReadWrite"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the peer came.</exception>
    public static ValueTask<SafeFdHandle> OpenAsync(string path, FileAccess access, FdConnectionOptions? options = null, CancellationToken cancellationToken = default) =>
        Endpoints.FifoOpener.OpenEndAsync(path, access, waitForWriter: true, options?.Reactors ?? ReactorGroup.Default, cancellationToken);

    /// <summary>Whether <paramref name="path"/> exists and is a FIFO.</summary>
    /// <param name="path">The path.</param>
    /// <returns>True for a FIFO.</returns>
    public static bool Exists(string path) =>
        Sys.Stat(path, followLinks: true, out uint type, out _) == 0 && type == Libc.S_IFIFO;
}
