using System.IO.Pipelines;
using System.Runtime.InteropServices;
using NUnit.Framework;
using PipeTransport.Buffers;
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
}
