using System.Runtime.InteropServices;

namespace PipeTransport;

/// <summary>
/// Owns one file descriptor and closes it exactly once, when the last user releases it.
/// </summary>
public sealed class SafeFdHandle : SafeHandle
{
    /// <summary>Wraps an fd number.</summary>
    /// <param name="fd">The descriptor.</param>
    /// <param name="ownsHandle">Whether disposing this handle closes the fd.</param>
    public SafeFdHandle(int fd, bool ownsHandle = true)
        : base(new IntPtr(-1), ownsHandle)
    {
        SetHandle(new IntPtr(fd));
        if (ownsHandle && fd >= 0)
        {
            Endpoints.FdTable.Opened();
        }
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle.ToInt64() < 0;

    /// <summary>The fd number (valid while the handle is open).</summary>
    public int Fd => (int)handle.ToInt64();

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        // close(2) is never retried: on Linux the fd is released even when close reports EINTR,
        // and closing again could close a number another thread has just been given.
        bool closed = Interop.Libc.Close((int)handle.ToInt64()) == 0;
        Endpoints.FdTable.Closed();
        return closed;
    }
}
