using Microsoft.Win32.SafeHandles;

namespace PipeTransport.Bridge;

/// <summary>Opens one end of a FIFO (to read or to write), waiting for the peer the way cat would, but cancellably.</summary>
internal static class FifoEnds
{
    private const int MaxReleasePauseMs = 50;

    public static async Task<FdConnection> OpenAsync(string path, Role role, FdConnectionOptions options, CancellationToken cancellationToken)
    {
        if (role == Role.Both)
            throw new UsageException($"fifo:{path} carries one direction only: use -u, or fifo:IN!!fifo:OUT");
        // FdConnection.OpenFifoAsync opens FIFO pairs only; one end on its own is opened here.
        return FdConnection.FromFd(await OpenBlockingAsync(path, role, cancellationToken).ConfigureAwait(false), options);
    }

    /// <summary>
    /// open(2) without O_NONBLOCK returns once the peer has opened the other end (so a reader never
    /// sees EOF before its first writer). It runs on a dedicated thread; cancellation releases it by
    /// opening the FIFO O_RDWR, which counts as both a reader and a writer and never blocks.
    /// </summary>
    /// <remarks>
    /// One release is not enough: cancellation can come before the thread has entered open(2) (a
    /// signal right after start-up), and a release that opens and closes the FIFO before the thread
    /// blocks wakes nobody. So the cancellation callback itself repeats the release, with a growing
    /// pause, until the open has returned: on the cancelling thread (for SIGINT, the runtime's signal
    /// handler thread), so the shutdown does not depend on the thread pool or a timer.
    /// </remarks>
    private static async Task<SafeFileHandle> OpenBlockingAsync(string path, Role role, CancellationToken cancellationToken)
    {
        FileAccess access = role == Role.Read ? FileAccess.Read : FileAccess.Write;
        Task<SafeFileHandle> open = Task.Factory.StartNew(
            () => File.OpenHandle(path, FileMode.Open, access, FileShare.ReadWrite),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        SafeFileHandle handle;
        using (cancellationToken.Register(() => ReleaseUntilReturned(path, open)))
            handle = await open.ConfigureAwait(false);
        if (cancellationToken.IsCancellationRequested)
        {
            handle.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
        }
        return handle;
    }

    private static void ReleaseUntilReturned(string path, Task open)
    {
        for (int pauseMs = 1; !open.IsCompleted; pauseMs = Math.Min(pauseMs * 2, MaxReleasePauseMs))
        {
            ReleaseBlockedOpen(path);
            // Waits on the task's own event: no pool thread, no timer. Its exception, if any, is the awaiter's.
            ((IAsyncResult)open).AsyncWaitHandle.WaitOne(pauseMs);
        }
    }

    private static void ReleaseBlockedOpen(string path)
    {
        try
        {
            File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite).Dispose();
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
