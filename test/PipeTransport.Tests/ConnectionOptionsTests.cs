using System.IO.Pipelines;
using System.Runtime.InteropServices;
using NUnit.Framework;
using PipeTransport.Interop;

namespace PipeTransport.Tests;

/// <summary><see cref="FdConnectionOptions.MemoryPool"/> is the pool the connections' pipes are built from.</summary>
public sealed class ConnectionOptionsTests
{
    [Test, CancelAfter(10_000)]
    public async Task Received_bytes_sit_in_a_block_of_the_options_memory_pool(CancellationToken ct)
    {
        const int blockSize = 36 * 1024; // a pool of its own: no other test rents from it
        var options = new FdConnectionOptions { BufferSize = blockSize };
        PinnedBlockMemoryPool pool = PinnedBlockMemoryPool.ForBlockSize(blockSize);
        Assert.That(options.MemoryPool, Is.SameAs(pool));

        (FdConnection a, FdConnection b) = FdConnection.CreatePair(options);
        await using (a)
        await using (b)
        {
            await a.Output.WriteAsync(new byte[] { 1, 2, 3 }, ct);
            ReadResult result = await b.Input.ReadAsync(ct);

            // The unread bytes hold their block: it is out of the options' pool.
            Assert.That(MemoryMarshal.TryGetMemoryManager(result.Buffer.First, out PinnedBlock? block), Is.True);
            Assert.That(block!.Memory.Length, Is.EqualTo(blockSize));
            Assert.That(pool.Outstanding, Is.GreaterThanOrEqualTo(1));
            b.Input.AdvanceTo(result.Buffer.End);
        }
    }

    [Test, CancelAfter(10_000)]
    public void A_clone_has_every_setting_and_changes_apart()
    {
        var options = new FdConnectionOptions { BufferSize = 16 * 1024, OutputPauseThreshold = 4096, OutputResumeThreshold = 1024, NoDelay = false, KeepFifoReaderOpen = true };
        _ = options.MemoryPool;
        FdConnectionOptions clone = options.Clone();
        Assert.That((clone.BufferSize, clone.OutputPauseThreshold, clone.OutputResumeThreshold, clone.NoDelay, clone.KeepFifoReaderOpen),
            Is.EqualTo((16 * 1024, 4096L, 1024L, false, true)));

        clone.BufferSize = 8 * 1024;
        Assert.That(options.BufferSize, Is.EqualTo(16 * 1024));
        Assert.That(clone.MemoryPool, Is.Not.SameAs(options.MemoryPool), "each follows its own block size");
    }
}
