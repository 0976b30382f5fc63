using Mono.Unix.Native;

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
        var permissions = (FilePermissions)(uint)mode;
        if (Syscall.mkfifo(path, permissions) != 0)
        {
            throw new PipeTransportException(Stdlib.GetLastError(), "mkfifo", path);
        }

        // mkfifo applies the umask; the caller asked for an exact mode.
        if (Syscall.chmod(path, permissions) != 0)
        {
            Errno errno = Stdlib.GetLastError();
            Syscall.unlink(path);
            throw new PipeTransportException(errno, "chmod", path);
        }
    }

    /// <summary>Whether <paramref name="path"/> exists and is a FIFO.</summary>
    /// <param name="path">The path.</param>
    /// <returns>True for a FIFO.</returns>
    public static bool Exists(string path) =>
        Syscall.stat(path, out Stat stat) == 0 && (stat.st_mode & FilePermissions.S_IFMT) == FilePermissions.S_IFIFO;
}
