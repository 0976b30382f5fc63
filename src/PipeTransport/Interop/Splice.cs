using System.Runtime.InteropServices;

namespace PipeTransport.Interop;

/// <summary>
/// splice(2), plus the pipe calls the splice engine needs, with the interop layer's conventions:
/// results are the count or a negated errno, and EINTR is retried here.
/// </summary>
internal static unsafe partial class SpliceSyscalls
{
    public const uint SPLICE_F_MOVE = 1;
    public const uint SPLICE_F_NONBLOCK = 2;
    public const uint SPLICE_F_MORE = 4;

    /// <summary>Moves up to <paramref name="length"/> bytes; both fds use (and advance) their own file position.</summary>
    public static nint Splice(int fdIn, int fdOut, nuint length, uint flags)
    {
        nint r;
        while ((r = Sys.Result(splice(fdIn, null, fdOut, null, length, flags))) == -Libc.EINTR) { }
        return r;
    }

    /// <summary>Creates a non-blocking, close-on-exec pipe; returns 0 or a negated errno.</summary>
    public static int CreatePipe(out int readFd, out int writeFd)
    {
        int* fds = stackalloc int[2];
        int r = (int)Sys.Result(Libc.Pipe2(fds, Libc.O_NONBLOCK | Libc.O_CLOEXEC));
        readFd = r == 0 ? fds[0] : -1;
        writeFd = r == 0 ? fds[1] : -1;
        return r;
    }

    /// <summary><c>fcntl(F_SETPIPE_SZ)</c>: the new capacity, or a negated errno.</summary>
    public static int SetPipeSize(int fd, int size)
    {
        int r;
        while ((r = (int)Sys.Result(Libc.Fcntl(fd, Libc.F_SETPIPE_SZ, size))) == -Libc.EINTR) { }
        return r;
    }

    /// <summary><c>ioctl(FIONREAD)</c>: bytes waiting (pipes, FIFOs, stream sockets), or a negated errno.</summary>
    public static int BytesAvailable(int fd)
    {
        int n = 0;
        int r;
        while ((r = (int)Sys.Result(Libc.Ioctl(fd, Libc.FIONREAD, &n))) == -Libc.EINTR) { }
        return r < 0 ? r : n;
    }

    [LibraryImport("libc", EntryPoint = "splice", SetLastError = true)]
    private static partial nint splice(int fd_in, long* off_in, int fd_out, long* off_out, nuint len, uint flags);
}
