using NUnit.Framework;
using PipeTransport.Interop;

namespace PipeTransport.Tests;

/// <summary>
/// <see cref="FdConnectionOptions.PipeCapacity"/>: the size each pipe or FIFO of a connection reports
/// (<c>F_GETPIPE_SZ</c> on another fd of the same pipe), what is left alone, and the process's budget.
/// </summary>
[NonParallelizable] // the budget and its count are process-wide
public sealed class PipeCapacityTests
{
    private static int Expected => Math.Min(PipeCapacity.DefaultConnectionCapacity, PipeCapacity.MaxSize);

    [Test, CancelAfter(20_000)]
    public async Task AFifoConnectionGrowsBothItsFifos(CancellationToken ct)
    {
        string dir = Directory.CreateTempSubdirectory("pt-pipesz-").FullName;
        try
        {
            string a = Path.Combine(dir, "a"), b = Path.Combine(dir, "b");
            Fifo.Create(a);
            Fifo.Create(b);
            // O_RDWR opens of a FIFO never wait: they stand in for the peers and ask the size.
            using var peerA = File.OpenHandle(a, FileMode.Open, FileAccess.ReadWrite);
            using var peerB = File.OpenHandle(b, FileMode.Open, FileAccess.ReadWrite);
            int before = PipeCapacity.Get(peerA);

            await using FdConnection connection = await FdConnection.OpenFifoAsync(a, b, null, ct);
            Assert.That(PipeCapacity.Get(peerA), Is.EqualTo(Expected), "the read FIFO");
            Assert.That(PipeCapacity.Get(peerB), Is.EqualTo(Expected), "the write FIFO");
            Assert.That(Expected, Is.GreaterThan(before), "the kernel's default is smaller");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test, CancelAfter(20_000)]
    public async Task AdoptedPipesGrowAndWhatWasAddedIsGivenBackAtClose(CancellationToken ct)
    {
        var (read, peerWrite) = FdTestHelpers.Pipe();
        var (peerRead, write) = FdTestHelpers.Pipe();
        using (peerWrite)
        using (peerRead)
        {
            int kernelDefault = PipeCapacity.Get(peerWrite);
            long grownBefore = PipeCapacity.GrownBytes;
            FdConnection connection = FdConnection.FromFds(read, write);
            Assert.That(PipeCapacity.Get(peerWrite), Is.EqualTo(Expected));
            Assert.That(PipeCapacity.Get(peerRead), Is.EqualTo(Expected));
            Assert.That(PipeCapacity.GrownBytes - grownBefore, Is.EqualTo(2L * (Expected - kernelDefault)));

            await connection.DisposeAsync();
            Assert.That(PipeCapacity.GrownBytes, Is.EqualTo(grownBefore), "closing gives the bytes back to the budget");
        }
    }

    [Test, CancelAfter(20_000)]
    public async Task ZeroLeavesPipesAsTheyAreAndNoPipeIsShrunk(CancellationToken ct)
    {
        var (read1, write1) = FdTestHelpers.Pipe();
        int kernelDefault = PipeCapacity.Get(write1);
        using (write1)
        await using (FdConnection untouched = FdConnection.FromFds(read1, FdTestHelpers.Pipe().Write, new FdConnectionOptions { PipeCapacity = 0 }))
        {
            Assert.That(PipeCapacity.Get(write1), Is.EqualTo(kernelDefault));
        }

        var (read2, write2) = FdTestHelpers.Pipe();
        using (write2)
        {
            int large = PipeCapacity.Set(write2, PipeCapacity.MaxSize);
            await using FdConnection small = FdConnection.FromFd(read2, new FdConnectionOptions { PipeCapacity = 8192 });
            Assert.That(PipeCapacity.Get(write2), Is.EqualTo(large), "asking for less never shrinks a pipe");
        }
    }

    [Test, CancelAfter(20_000)]
    public async Task PastTheBudgetPipesKeepTheKernelsSize(CancellationToken ct)
    {
        PipeCapacity.BudgetOverride = PipeCapacity.GrownBytes; // nothing more may be added
        try
        {
            var (read, peerWrite) = FdTestHelpers.Pipe();
            int kernelDefault = PipeCapacity.Get(peerWrite);
            using (peerWrite)
            {
                await using FdConnection connection = FdConnection.FromFd(read);
                Assert.That(PipeCapacity.Get(peerWrite), Is.EqualTo(kernelDefault));
            }
        }
        finally
        {
            PipeCapacity.BudgetOverride = null;
        }
    }

    [Test, CancelAfter(20_000)]
    public void ANegativeCapacityIsRefused()
    {
        var (read, write) = FdTestHelpers.Pipe();
        using (write)
        using (read)
        {
            Assert.That(() => FdConnection.FromFd(read, new FdConnectionOptions { PipeCapacity = -1 }),
                Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("PipeCapacity"));
        }
    }
}
