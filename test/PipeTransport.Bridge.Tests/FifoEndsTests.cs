using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>
/// The bridge's one-ended FIFO open (a blocking open(2) on its own thread) under cancellation. A signal
/// that comes right after start-up cancels it before that thread has entered open(2); a process test
/// hits that window only now and then, so it is driven here directly.
/// </summary>
public sealed class FifoEndsTests
{
    private const int Attempts = 50;

    /// <summary>
    /// An already-cancelled token releases the open before its thread can block: the release must be
    /// repeated until the open returns, and the fd it then got must be closed.
    /// </summary>
    [TestCase(FileAccess.Read), TestCase(FileAccess.Write), CancelAfter(30_000)]
    public async Task CancellingBeforeTheOpenBlocksStillEndsIt(FileAccess access, CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string fifo = dir.Fifo("f");
        int fdsBefore = OpenFdCount();
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        for (int i = 0; i < Attempts; i++)
        {
            Task<FdConnection> open = FifoEnds.OpenAsync(fifo, RoleOf(access), new FdConnectionOptions(), cancelled.Token);
            Assert.That(async () => await open.WaitAsync(cancellationToken), Throws.InstanceOf<OperationCanceledException>(), $"attempt {i}");
        }
        Assert.That(OpenFdCount(), Is.EqualTo(fdsBefore), "every fd the released opens got is closed");
    }

    /// <summary>Cancelled while blocked in open(2) (no peer ever comes): the open ends as cancelled.</summary>
    [TestCase(FileAccess.Read), TestCase(FileAccess.Write), CancelAfter(20_000)]
    public async Task CancellingWhileBlockedEndsTheOpen(FileAccess access, CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string fifo = dir.Fifo("f");
        using var cancel = new CancellationTokenSource();
        Task<FdConnection> open = FifoEnds.OpenAsync(fifo, RoleOf(access), new FdConnectionOptions(), cancel.Token);
        await WaitUntilAThreadBlocksInFifoOpenAsync(cancellationToken);
        Assert.That(open.IsCompleted, Is.False, "no peer: the open waits");
        await cancel.CancelAsync();
        Assert.That(async () => await open.WaitAsync(cancellationToken), Throws.InstanceOf<OperationCanceledException>());
    }

    /// <summary>With a peer the open succeeds, the same as cat's.</summary>
    [TestCase(FileAccess.Read), TestCase(FileAccess.Write), CancelAfter(20_000)]
    public async Task OpensOnceThePeerComes(FileAccess access, CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string fifo = dir.Fifo("f");
        Task<FdConnection> open = FifoEnds.OpenAsync(fifo, RoleOf(access), new FdConnectionOptions(), cancellationToken);
        await WaitUntilAThreadBlocksInFifoOpenAsync(cancellationToken);
        FileAccess peerAccess = access == FileAccess.Read ? FileAccess.Write : FileAccess.Read;
        using var peer = new FileStream(fifo, FileMode.Open, peerAccess, FileShare.ReadWrite, 1);
        await using FdConnection connection = await open.WaitAsync(cancellationToken);
        Assert.That(connection, Is.Not.Null);
    }

    private static Role RoleOf(FileAccess access) => access == FileAccess.Read ? Role.Read : Role.Write;

    private static int OpenFdCount() => Directory.GetFiles("/proc/self/fd").Length;

    /// <summary>Polls the kernel's view (wchan) of this process's threads: one waits in the FIFO open for its partner.</summary>
    private static async Task WaitUntilAThreadBlocksInFifoOpenAsync(CancellationToken cancellationToken)
    {
        while (!Directory.GetDirectories("/proc/self/task").Any(t => ReadWchan(t) == "wait_for_partner"))
        {
            await Task.Delay(1, cancellationToken);
        }
    }

    private static string ReadWchan(string task)
    {
        try { return File.ReadAllText(Path.Combine(task, "wchan")); }
        catch (IOException) { return ""; }
    }
}
