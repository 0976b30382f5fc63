using Microsoft.Win32.SafeHandles;
using Mono.Unix.Native;

namespace PipeTransport.Kestrel;

/// <summary>
/// Opens one end of a FIFO and waits for the other end's first opener, the kernel's own way: a
/// blocking <c>open</c>, which returns once a peer has the FIFO open. The open runs on a thread of its
/// own (it cannot be made asynchronous); cancelling opens the other end ourselves for an instant,
/// which completes the blocked open, and the fd it returned is closed.
/// </summary>
internal static class FifoOpen
{
    public static async Task<SafeFileHandle> WaitForPeerAsync(string path, bool forWriting, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var opened = new TaskCompletionSource<SafeFileHandle>(TaskCreationOptions.RunContinuationsAsynchronously);
        var flags = (forWriting ? OpenFlags.O_WRONLY : OpenFlags.O_RDONLY) | OpenFlags.O_CLOEXEC;
        var thread = new Thread(() => OpenBlocking(path, flags, opened))
        {
            IsBackground = true,
            Name = "FIFO open",
        };
        thread.Start();
        try
        {
            return await opened.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Wake the blocked open by being its peer for a moment; retry in case the thread had not
            // reached open yet when we first knocked.
            var partnerFlags = (forWriting ? OpenFlags.O_RDONLY : OpenFlags.O_WRONLY) | OpenFlags.O_NONBLOCK | OpenFlags.O_CLOEXEC;
            while (!opened.Task.IsCompleted)
            {
                var fd = Syscall.open(path, partnerFlags);
                if (fd >= 0)
                {
                    Syscall.close(fd);
                }
                await Task.WhenAny(opened.Task, Task.Delay(10, CancellationToken.None)).ConfigureAwait(false);
            }
            if (opened.Task.IsCompletedSuccessfully)
            {
                opened.Task.Result.Dispose();
            }
            throw;
        }
    }

    private static void OpenBlocking(string path, OpenFlags flags, TaskCompletionSource<SafeFileHandle> opened)
    {
        while (true)
        {
            var fd = Syscall.open(path, flags);
            if (fd >= 0)
            {
                opened.TrySetResult(new SafeFileHandle(fd, ownsHandle: true));
                return;
            }
            var errno = Stdlib.GetLastError();
            if (errno != Errno.EINTR)
            {
                opened.TrySetException(new PipeTransportException(errno, "open", path));
                return;
            }
        }
    }
}
