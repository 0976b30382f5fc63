using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using NUnit.Framework;

namespace PipeTransport.Tests;

/// <summary>Many idle connections: accepted, held, and holding no pipe buffers.</summary>
public sealed class ScaleTests
{
    // A client process (the server's fds and the clients' would not both fit under this machine's limit).
    private const string Clients = """
        import socket, sys, resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        port, n = int(sys.argv[1]), int(sys.argv[2])
        held = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            held.append(s)
        if len(sys.argv) > 3:
            for s in held[:int(sys.argv[3])]:
                s.sendall(b"x" * 1000)
        print("connected", len(held), flush=True)
        sys.stdin.read()
        """;

    [Test, CancelAfter(120_000)]
    public async Task TenThousandIdleConnectionsHoldNoBuffers(CancellationToken ct)
    {
        const int count = 10_000;
        const int blockSize = 20 * 1024; // a pool of its own, so other tests cannot disturb the count
        var options = new FdConnectionOptions { BufferSize = blockSize };
        Buffers.PinnedBlockMemoryPool pool = Buffers.PinnedBlockMemoryPool.ForBlockSize(blockSize);
        long outstandingBefore = pool.Outstanding;
        await using FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), new FdListenerOptions { ConnectionOptions = options, Backlog = 4096 });
        Process clients = TestProcess.Start("python3", "-c", Clients, ((IPEndPoint)listener.LocalEndPoint).Port.ToString(), count.ToString(), "10");
        int fdsBefore = TestProcess.OpenFdCount();
        var connections = new List<FdConnection>(count);
        var reads = new List<Task<ReadResult>>(count);
        try
        {
            while (connections.Count < count)
            {
                FdConnection c = (await listener.AcceptAsync(ct))!;
                connections.Add(c);
                reads.Add(c.Input.ReadAsync(ct).AsTask()); // every receive loop started and waiting
            }

            Assert.That(await clients.StandardOutput.ReadLineAsync(ct), Is.EqualTo($"connected {count}"));
            Assert.That(TestProcess.OpenFdCount() - fdsBefore, Is.EqualTo(count), "one fd per connection");

            // Ten clients sent data: wait for those reads, then the rest must hold nothing (no block is
            // rented before data arrives).
            while (reads.Count(r => r.IsCompleted) < 10)
            {
                await Task.WhenAny(reads.Where(r => !r.IsCompleted));
            }

            int withData = 0;
            foreach (Task<ReadResult> read in reads.Where(r => r.IsCompleted))
            {
                withData++;
                Assert.That((await read).Buffer.Length, Is.GreaterThan(0));
            }

            Assert.That(withData, Is.EqualTo(10));
            Assert.That(pool.Outstanding - outstandingBefore, Is.LessThanOrEqualTo(withData), "idle connections rent no pipe memory");
        }
        finally
        {
            clients.StandardInput.Close(); // the clients exit: every connection sees EOF
            await clients.WaitForExitAsync(ct);
            TestProcess.Close(clients);
            foreach (FdConnection c in connections)
            {
                await c.DisposeAsync();
            }
        }

        Assert.That(pool.Outstanding, Is.EqualTo(outstandingBefore));
    }
}
