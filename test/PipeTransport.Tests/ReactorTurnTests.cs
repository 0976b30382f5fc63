using NUnit.Framework;
using PipeTransport.Connection;
using PipeTransport.Interop;
using PipeTransport.Reactor;

namespace PipeTransport.Tests;

/// <summary>
/// <see cref="EpollReactor.NextTurn"/>: a long job on a reactor thread (a splice copy) gives the other fds
/// their turn and goes on on the same thread.
/// </summary>
public sealed class ReactorTurnTests
{
    [Test, CancelAfter(20_000)]
    public async Task AJobThatDefersItselfStaysOnTheReactorThreadAndLeavesItToOtherFds(CancellationToken cancellationToken)
    {
        using var group = new ReactorGroup(1, yieldBeforeWaiting: false, ReactorPolling.DedicatedThread);
        var (startRead, startWrite) = FdTestHelpers.Pipe();
        var (pingRead, pingWrite) = FdTestHelpers.Pipe();
        using (startRead) using (startWrite) using (pingRead) using (pingWrite)
        using (var start = new RawFd(FdChannel.Adopt(startRead, group.Next(), disposeHandle: false), ownsChannel: true))
        using (var ping = new RawFd(FdChannel.Adopt(pingRead, group.Next(), disposeHandle: false), ownsChannel: true))
        {
            using var stop = new CancellationTokenSource();
            long turns = 0;
            int reactorThread = 0;
            bool movedOff = false;
            byte[] one = new byte[1];
            var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

            // The job starts on the reactor thread (the continuation of a wait for readability) and
            // defers itself turn after turn, like a copy whose source never runs dry.
            ValueTask started = start.CallOnReactorAsync(fd => Sys.Read(LinuxSyscalls.Instance, fd, one) > 0, write: false, cancellationToken);
            Assert.That(started.IsCompleted, Is.False, "nothing was written yet: the call must wait");
            Task job = RunJobAsync();

            async Task RunJobAsync()
            {
                await started;
                reactorThread = Environment.CurrentManagedThreadId;
                Assert.That(EpollReactor.IsDispatching, Is.True, "the wait's continuation did not run on the reactor");
                while (!stop.IsCancellationRequested)
                {
                    if (Interlocked.Increment(ref turns) == 10)
                    {
                        running.TrySetResult();
                    }

                    await EpollReactor.NextTurn();
                    movedOff |= Environment.CurrentManagedThreadId != reactorThread;
                }

                await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
            }

            Write(startWrite, 0);
            await running.Task.WaitAsync(cancellationToken);

            // While the job runs, the same reactor still reports another fd's readiness, every time.
            byte[] received = new byte[1];
            for (int i = 0; i < 20; i++)
            {
                Write(pingWrite, (byte)i);
                await ping.ReadAsync(fd => Sys.Read(LinuxSyscalls.Instance, fd, received) > 0, cancellationToken);
                Assert.That(received[0], Is.EqualTo((byte)i));
            }

            long turnsDuringPings = Interlocked.Read(ref turns);
            Assert.That(job.IsCompleted, Is.False);
            await stop.CancelAsync();
            await job;
            Assert.That(movedOff, Is.False, "a deferred turn resumed on another thread");
            Assert.That(turnsDuringPings, Is.GreaterThanOrEqualTo(10));
        }
    }

    private static void Write(SafeFdHandle pipe, byte value)
    {
        using var stream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(pipe.Fd, ownsHandle: false), FileAccess.Write, 0);
        stream.WriteByte(value);
    }

    [Test, CancelAfter(20_000)]
    public async Task OffAReactorThreadTheNextTurnIsTheThreadPools(CancellationToken cancellationToken)
    {
        await Task.Run(async () =>
        {
            Assert.That(EpollReactor.IsDispatching, Is.False);
            await EpollReactor.NextTurn();
            Assert.That(Thread.CurrentThread.IsThreadPoolThread, Is.True);
        }, cancellationToken);
    }
}
