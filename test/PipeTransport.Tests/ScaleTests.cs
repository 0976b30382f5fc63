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
        print("connected", len(held), flush=True)
        if len(sys.argv) > 3:
            # Only once the server has accepted every connection: a segment that meets a full accept
            # queue is dropped and retransmitted with exponential backoff.
            sys.stdin.readline()
            for s in held[:int(sys.argv[3])]:
                s.sendall(b"x" * 1000)
            print("sent", flush=True)
        sys.stdin.read()
        """;

    [Test, CancelAfter(120_000)]
    public async Task TenThousandIdleConnectionsHoldNoBuffers(CancellationToken ct)
    {
        const int count = 10_000;
        const int blockSize = 20 * 1024; // a pool of its own, so other tests cannot disturb the count
        var options = new FdConnectionOptions { BufferSize = blockSize };
        PinnedBlockMemoryPool pool = PinnedBlockMemoryPool.ForBlockSize(blockSize);
        long outstandingBefore = pool.Outstanding;
        await using FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), new FdListenerOptions { ConnectionOptions = options, Backlog = 4096 });
        Process clients = TestProcess.Start("python3", "-c", Clients, ((IPEndPoint)listener.LocalEndPoint).Port.ToString(), count.ToString(), "10");
        int fdsBefore = TestProcess.OpenFdCount();
        var connections = new List<FdConnection>(count);
        var reads = new List<Task<ReadResult>>(count);
        string phase = "accepting";

        // The connections that have bytes waiting or a completed read, with their states.
        string Describe() =>
            $"{reads.Count(r => r.IsCompletedSuccessfully)} reads completed: " + string.Join("; ", Enumerable.Range(0, reads.Count)
                .Where(i => reads[i].IsCompleted || connections[i].DebugState.Contains("fionread=1000"))
                .Take(20).Select(i => $"#{i} {reads[i].Status} {connections[i].DebugState}"));

        try
        {
            while (connections.Count < count)
            {
                FdConnection c = (await listener.AcceptAsync(ct))!;
                connections.Add(c);
                reads.Add(c.Input.ReadAsync(ct).AsTask()); // every receive loop started and waiting
            }

            phase = "waiting for the clients' line";
            Assert.That(await clients.StandardOutput.ReadLineAsync(ct), Is.EqualTo($"connected {count}"));
            clients.StandardInput.WriteLine("send");
            clients.StandardInput.Flush();
            Assert.That(await clients.StandardOutput.ReadLineAsync(ct), Is.EqualTo("sent"));
            phase = "waiting for the ten reads with data";
            Assert.That(TestProcess.OpenFdCount() - fdsBefore, Is.EqualTo(count), "one fd per connection");

            // Ten clients sent data: wait for those reads, then the rest must hold nothing (no block is
            // rented before data arrives).
            while (true)
            {
                // The pending reads first, then the count from the same snapshot: a read that completes
                // in between is either counted or awaited. (Counting first and then filtering lost the
                // tenth read when it completed in between, and the test waited for reads without data.)
                List<Task<ReadResult>> pending = reads.Where(r => !r.IsCompleted).ToList();
                if (reads.Count - pending.Count >= 10)
                {
                    break;
                }

                // A watchdog, not a synchronisation: fail with the connections' states, taken before
                // the test's cancellation would change them, if no read completes for 30 s.
                Task progress = Task.WhenAny(pending);
                if (await Task.WhenAny(progress, Task.Delay(TimeSpan.FromSeconds(30), ct)) != progress)
                {
                    Assert.Fail($"no read completed for 30 s: {Describe()}");
                }
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
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Say where it stood, instead of the cancellation of the wait below.
            Assert.Fail($"timed out {phase}: {connections.Count} of {count} connections accepted, {Describe()}, " +
                $"client process {(clients.HasExited ? $"exited with {clients.ExitCode}: {await clients.StandardError.ReadToEndAsync(CancellationToken.None)}" : "running")}");
        }
        finally
        {
            clients.StandardInput.Close(); // the clients exit: every connection sees EOF
            if (ct.IsCancellationRequested)
            {
                clients.Kill();
            }

            await clients.WaitForExitAsync(CancellationToken.None);
            TestProcess.Close(clients);
            for (int i = 0; i < connections.Count; i++)
            {
                await connections[i].DisposeAsync();

                // Disposal completes a pending read, maybe on another thread after DisposeAsync returned;
                // its blocks (the EOF read's) are the application's until its AdvanceTo, as in any read loop.
                ReadResult result;
                try
                {
                    result = await reads[i];
                }
                catch (OperationCanceledException)
                {
                    continue;
                }

                connections[i].Input.AdvanceTo(result.Buffer.End);
            }
        }

        Assert.That(pool.Outstanding, Is.EqualTo(outstandingBefore));
    }
}
