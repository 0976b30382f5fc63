using System.Buffers;

namespace PipeTransport.Interop;

/// <summary>
/// The data-path system calls of a connection, one libc call each, returning the result or the
/// negated errno (including <c>-EINTR</c>: <see cref="Sys"/> retries). This is the seam tests use to
/// produce what a real fd cannot produce on demand (EINTR, EIO, short writes).
/// </summary>
internal interface ISyscalls
{
    /// <summary><c>read(2)</c> into <paramref name="buffer"/>.</summary>
    nint Read(int fd, Memory<byte> buffer);

    /// <summary><c>write(2)</c>/<c>writev(2)</c> of the sequence (at most <see cref="LinuxSyscalls.MaxIov"/> segments per call).</summary>
    nint Write(int fd, ReadOnlySequence<byte> buffer);

    /// <summary><c>ioctl(FIONREAD)</c>: bytes ready to read.</summary>
    int BytesAvailable(int fd);

    /// <summary>
    /// Whether a short <see cref="Read"/> of a non-blocking stream socket means the kernel had
    /// nothing more (true of Linux; a fake that cuts reads short on purpose says false, and the
    /// receive loop then asks FIONREAD instead of waiting for the next edge).
    /// </summary>
    bool ShortReadMeansDrained { get; }
}
