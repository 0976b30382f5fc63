using Mono.Unix.Native;
using PipeTransport.Interop;

namespace PipeTransport;

/// <summary>
/// A system call on an fd, path or endpoint failed. Carries the <see cref="Errno"/>, the operation
/// and what it was applied to; the message reads like <c>open /tmp/x: ENOENT (No such file or directory)</c>.
/// Building one loads nothing and opens nothing, so it can be thrown at the fd limit.
/// </summary>
public class PipeTransportException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="errno">The error number.</param>
    /// <param name="operation">The operation that failed (a system call name or a short phrase).</param>
    /// <param name="target">The path, fd or endpoint it was applied to.</param>
    /// <param name="innerException">The underlying cause, if any.</param>
    public PipeTransportException(Errno errno, string operation, string? target, Exception? innerException = null)
        : base(Format(errno, operation, target, null), innerException)
    {
        Errno = errno;
        Operation = operation;
        Target = target;
        HResult = (int)errno;
    }

    /// <summary>Creates the exception with an explanation that replaces the system message.</summary>
    /// <param name="errno">The error number.</param>
    /// <param name="operation">The operation that failed.</param>
    /// <param name="target">The path, fd or endpoint it was applied to.</param>
    /// <param name="detail">What went wrong, in words.</param>
    public PipeTransportException(Errno errno, string operation, string? target, string detail)
        : base(Format(errno, operation, target, detail))
    {
        Errno = errno;
        Operation = operation;
        Target = target;
        HResult = (int)errno;
    }

    /// <summary>The error number (Mono.Posix names: <c>ENOENT</c>, <c>EPIPE</c>, ...).</summary>
    public Errno Errno { get; }

    /// <summary>The operation that failed.</summary>
    public string Operation { get; }

    /// <summary>The path, fd or endpoint the operation was applied to.</summary>
    public string? Target { get; }

    /// <summary>Mono.Posix's <see cref="Errno"/> values are the Linux numbers.</summary>
    internal static Errno ToErrno(int errno) => (Errno)errno;

    /// <summary>Builds the exception for a negated-errno result of the interop layer.</summary>
    internal static PipeTransportException FromResult(long negatedErrno, string operation, string? target)
    {
        int errno = (int)-negatedErrno;
        return errno is Interop.Libc.EPIPE or Interop.Libc.ECONNRESET
            ? new FdConnectionResetException(ToErrno(errno), operation, target)
            : new PipeTransportException(ToErrno(errno), operation, target);
    }

    private static string Format(Errno errno, string operation, string? target, string? detail)
    {
        string what = target is null ? operation : $"{operation} {target}";
        return $"{what}: {ErrnoText.Name((int)errno)} ({detail ?? ErrnoText.Message((int)errno)})";
    }
}
