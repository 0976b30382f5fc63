using System.Runtime.InteropServices;

namespace PipeTransport.Interop;

/// <summary>
/// splice(2), tee(2) and sendfile(2), plus the pipe and poll calls the splice engine needs, with the interop layer's conventions:
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

    /// <summary>Sends up to <paramref name="length"/> bytes of a file from its own file position (which it advances).</summary>
    public static nint SendFile(int fdOut, int fdIn, nuint length)
    {
        nint r;
        while ((r = Sys.Result(sendfile(fdOut, fdIn, null, length))) == -Libc.EINTR) { }
        return r;
    }

    /// <summary>
    /// Duplicates up to <paramref name="length"/> bytes from one pipe into another without consuming
    /// them. On an empty pipe with <see cref="SPLICE_F_NONBLOCK"/> it returns <c>-EAGAIN</c> while a
    /// writer has the source open and 0 when none has.
    /// </summary>
    public static nint Tee(int fdIn, int fdOut, nuint length, uint flags)
    {
        nint r;
        while ((r = Sys.Result(tee(fdIn, fdOut, length, flags))) == -Libc.EINTR) { }
        return r;
    }

    /// <summary>
    /// Whether a read of <paramref name="fd"/> would not block right now: data, EOF (a FIFO without
    /// writers, a socket after the peer's FIN) or an error. A level-triggered <c>poll</c> with no timeout;
    /// errors count as readable so that the next splice reports them.
    /// </summary>
    public static bool IsReadable(int fd)
    {
        PollFd entry = new() { Fd = fd, Events = POLLIN | POLLRDHUP };
        int r;
        while ((r = (int)Sys.Result(poll(&entry, 1, 0))) == -Libc.EINTR) { }
        return r != 0 && (r < 0 || (entry.Revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0);
    }

    private const short POLLIN = 0x1;
    private const short POLLERR = 0x8;
    private const short POLLHUP = 0x10;
    private const short POLLNVAL = 0x20;
    private const short POLLRDHUP = 0x2000;

    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int poll(PollFd* fds, nuint nfds, int timeout);

    [LibraryImport("libc", EntryPoint = "sendfile", SetLastError = true)]
    private static partial nint sendfile(int out_fd, int in_fd, long* offset, nuint count);

    [LibraryImport("libc", EntryPoint = "tee", SetLastError = true)]
    private static partial nint tee(int fd_in, int fd_out, nuint len, uint flags);

    [LibraryImport("libc", EntryPoint = "splice", SetLastError = true)]
    private static partial nint splice(int fd_in, long* off_in, int fd_out, long* off_out, nuint len, uint flags);
}
