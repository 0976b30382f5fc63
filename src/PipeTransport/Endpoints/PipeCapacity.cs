using System.Runtime.InteropServices;
using PipeTransport.Interop;

namespace PipeTransport;

/// <summary>
/// The kernel buffer of a pipe or FIFO (<c>fcntl F_GETPIPE_SZ</c>/<c>F_SETPIPE_SZ</c>). A larger
/// buffer means fewer wake-ups per megabyte between a writer and a reader.
/// </summary>
public static class PipeCapacity
{
    /// <summary>
    /// Sets the capacity of the pipe behind <paramref name="pipe"/> (either end). The kernel rounds
    /// up to a power-of-two number of pages; without <c>CAP_SYS_RESOURCE</c> the maximum is
    /// <c>/proc/sys/fs/pipe-max-size</c> (1 MiB by default).
    /// </summary>
    /// <param name="pipe">An fd of a pipe or FIFO.</param>
    /// <param name="bytes">The wanted capacity.</param>
    /// <returns>The capacity the kernel set.</returns>
    /// <exception cref="PipeTransportException"><c>EPERM</c> above the limit, <c>EBUSY</c> below the bytes in the pipe, <c>EBADF</c> for a non-pipe.</exception>
    public static int Set(SafeHandle pipe, int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        return Fcntl(pipe, Libc.F_SETPIPE_SZ, bytes, "fcntl(F_SETPIPE_SZ)");
    }

    /// <summary>
    /// Grows the kernel buffer of a pipe or FIFO behind a <see cref="RawFd"/> (for example a
    /// connection's <see cref="FdConnection.InputFd"/>), so each wake-up moves more.
    /// </summary>
    /// <param name="fd">The pipe.</param>
    /// <param name="bytes">The size asked for.</param>
    /// <returns>The resulting size, or -1 if <paramref name="fd"/> is not a pipe or the kernel refused (beyond <c>/proc/sys/fs/pipe-max-size</c>).</returns>
    public static int TrySet(RawFd fd, int bytes)
    {
        ArgumentNullException.ThrowIfNull(fd);
        int result = -1;
        fd.Control(raw => result = Sys.Fcntl(raw, Libc.F_SETPIPE_SZ, bytes));
        return result < 0 ? -1 : result;
    }

    /// <summary>The capacity of the pipe behind <paramref name="pipe"/>.</summary>
    /// <param name="pipe">An fd of a pipe or FIFO.</param>
    /// <returns>The capacity in bytes.</returns>
    /// <exception cref="PipeTransportException"><c>EBADF</c> for a non-pipe.</exception>
    public static int Get(SafeHandle pipe) => Fcntl(pipe, Libc.F_GETPIPE_SZ, 0, "fcntl(F_GETPIPE_SZ)");

    private static int Fcntl(SafeHandle pipe, int command, int argument, string operation)
    {
        ArgumentNullException.ThrowIfNull(pipe);
        ObjectDisposedException.ThrowIf(pipe.IsClosed, pipe);
        bool added = false;
        try
        {
            pipe.DangerousAddRef(ref added);
            int fd = (int)pipe.DangerousGetHandle();
            int r = Sys.Fcntl(fd, command, argument);
            return r >= 0 ? r : throw PipeTransportException.FromResult(r, operation, "fd " + fd);
        }
        finally
        {
            if (added)
            {
                pipe.DangerousRelease();
            }
        }
    }
}
