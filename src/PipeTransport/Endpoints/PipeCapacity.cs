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
    /// The default of <see cref="FdConnectionOptions.PipeCapacity"/> (1 MiB, the usual
    /// <c>/proc/sys/fs/pipe-max-size</c>): a reader or writer woken once per megabyte instead of once
    /// per 64 KiB (the kernel's default capacity).
    /// </summary>
    public const int DefaultConnectionCapacity = 1 << 20;

    private static readonly Lazy<int> s_maxSize = new(() => ReadProcLimit("/proc/sys/fs/pipe-max-size", DefaultConnectionCapacity));

    // The bytes connections added to pipes, against pipe-user-pages-soft: the level at which the kernel
    // stops growing an unprivileged user's pipes. Root is not held to it by the kernel; the library holds
    // itself to it, so many pipe connections cannot pin an unbounded amount of kernel memory.
    private static long s_grownBytes;
    private static readonly Lazy<long> s_budget = new(() => ReadProcLimit("/proc/sys/fs/pipe-user-pages-soft", 0) * (long)Environment.SystemPageSize);

    /// <summary>The most a connection asks for: <c>/proc/sys/fs/pipe-max-size</c>.</summary>
    internal static int MaxSize => s_maxSize.Value;

    /// <summary>Bytes connections have added to pipes and not yet given back (for tests).</summary>
    internal static long GrownBytes => Volatile.Read(ref s_grownBytes);

    /// <summary>Replaces the process's budget for <see cref="GrownBytes"/> (tests).</summary>
    internal static long? BudgetOverride { get; set; }

    /// <summary>
    /// Grows the pipe behind <paramref name="fd"/> towards <paramref name="wanted"/> (at most
    /// <see cref="MaxSize"/>), never shrinking it, within the process's budget. Best effort: a pipe
    /// the kernel or the budget refuses keeps its capacity.
    /// </summary>
    /// <returns>The bytes added, to give back with <see cref="Release"/> when the fd closes.</returns>
    internal static int Grow(int fd, int wanted)
    {
        int current = Sys.Fcntl(fd, Libc.F_GETPIPE_SZ, 0);
        int target = Math.Min(wanted, MaxSize);
        if (current <= 0 || current >= target)
        {
            return 0;
        }

        long budget = BudgetOverride ?? (s_budget.Value > 0 ? s_budget.Value : long.MaxValue);
        long asked = target - current;
        if (Interlocked.Add(ref s_grownBytes, asked) > budget)
        {
            Interlocked.Add(ref s_grownBytes, -asked);
            return 0;
        }

        int set = Sys.Fcntl(fd, Libc.F_SETPIPE_SZ, target);
        long added = set > current ? set - current : 0;
        Interlocked.Add(ref s_grownBytes, added - asked);
        return (int)added;
    }

    /// <summary>Gives back what <see cref="Grow"/> added once the fd is closed.</summary>
    internal static void Release(int bytes)
    {
        if (bytes > 0)
        {
            Interlocked.Add(ref s_grownBytes, -bytes);
        }
    }

    private static int ReadProcLimit(string path, int fallback)
    {
        try
        {
            return int.TryParse(File.ReadAllText(path).AsSpan().Trim(), out int value) && value >= 0 ? value : fallback;
        }
        catch (IOException)
        {
            return fallback;
        }
        catch (UnauthorizedAccessException)
        {
            return fallback;
        }
    }

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
