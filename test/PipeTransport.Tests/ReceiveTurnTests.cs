using System.IO.Pipelines;
using System.Text;
using NUnit.Framework;
using static PipeTransport.Tests.FdTestHelpers;

namespace PipeTransport.Tests;

/// <summary>
/// A read of a pipe connection's Input that finds it empty while the fd holds bytes runs the receive
/// loop's turn on its own thread: it does not wait for the reactor to read them and hand them over.
/// </summary>
public sealed class ReceiveTurnTests
{
    [Test, CancelAfter(20_000)]
    public async Task AReadOfAPipeTakesBytesTheReactorHasNotReadYet(CancellationToken ct)
    {
        using var reactors = new ReactorGroup(1);
        var (pipeRead, pipeWrite) = Pipe();
        await using FdConnection connection = FdConnection.FromFd(pipeRead, new FdConnectionOptions { ReactorGroup = reactors });
        using (pipeWrite)
        {
            // Start the receive loop and let it wait for the next edge.
            Assert.That(WriteOnce(pipeWrite.Fd, "a"u8.ToArray()), Is.EqualTo((nint)1));
            ReadResult first = await connection.Input.ReadAsync(ct);
            connection.Input.AdvanceTo(first.Buffer.End);
            while (!connection.InputChannel.Read.IsWaiting)
            {
                await Task.Delay(1, ct);
            }

            // Hold the one reactor thread: a connection on it whose read continuation runs inline and blocks.
            (FdConnection blocker, FdConnection peer) = FdConnection.CreatePair(new FdConnectionOptions { ReactorGroup = reactors, ApplicationScheduler = PipeScheduler.Inline });
            await using (blocker)
            await using (peer)
            {
                using var release = new ManualResetEventSlim();
                var onReactor = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                Task held = HoldAsync(blocker, onReactor, release);
                await peer.Output.WriteAsync("x"u8.ToArray(), ct);
                await onReactor.Task.WaitAsync(ct);
                try
                {
                    Assert.That(WriteOnce(pipeWrite.Fd, "bcd"u8.ToArray()), Is.EqualTo((nint)3));
                    ValueTask<ReadResult> read = connection.Input.ReadAsync(ct);
                    Assert.That(read.IsCompleted, Is.True, "the reactor is held: only the reading thread can have read the bytes");
                    ReadResult result = await read;
                    Assert.That(Encoding.ASCII.GetString(result.Buffer.FirstSpan), Is.EqualTo("bcd"));
                    connection.Input.AdvanceTo(result.Buffer.End);
                }
                finally
                {
                    release.Set();
                }

                await held.WaitAsync(ct);
            }
        }
    }

    private static async Task HoldAsync(FdConnection blocker, TaskCompletionSource onReactor, ManualResetEventSlim release)
    {
        ReadResult result = await blocker.Input.ReadAsync();
        onReactor.SetResult(); // running on the reactor thread (Inline application scheduling)
        release.Wait();
        blocker.Input.AdvanceTo(result.Buffer.End);
    }
}
