using NUnit.Framework;
using PipeTransport.Interop;
using static PipeTransport.Tests.FdTestHelpers;

namespace PipeTransport.Tests;

/// <summary>
/// The <see cref="RawFd"/> contract (Go's <c>syscall.RawConn</c>): the function is called first; only
/// when it returns false does the call wait for readiness and call it again; dispose and cancellation
/// wake a waiter.
/// </summary>
public class RawFdTests
{
    [Test, CancelAfter(5000)]
    public void ReadAsync_calls_the_function_first_and_does_not_wait_when_it_returns_true(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        using (RawFd raw = RawFd.Create(r))
        {
            int calls = 0;
            int seenFd = -1;

            // The pipe is empty: a wait would never end, so completing proves there was none.
            ValueTask read = raw.ReadAsync(fd => { calls++; seenFd = fd; return true; }, ct);

            Assert.That(read.IsCompletedSuccessfully, Is.True);
            Assert.That(calls, Is.EqualTo(1));
            Assert.That(seenFd, Is.EqualTo(r.Fd));
        }
    }

    [Test, CancelAfter(5000)]
    public void WriteAsync_calls_the_function_first_and_does_not_wait_when_it_returns_true(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        using (RawFd raw = RawFd.Create(w))
        {
            FillPipe(w.Fd); // not writable: a wait would never end
            int calls = 0;

            ValueTask write = raw.WriteAsync(fd => { calls++; return true; }, ct);

            Assert.That(write.IsCompletedSuccessfully, Is.True);
            Assert.That(calls, Is.EqualTo(1));
        }
    }

    [Test, CancelAfter(5000)]
    public async Task ReadAsync_waits_for_readability_when_the_function_returns_false_and_calls_it_again(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        using (RawFd raw = RawFd.Create(r))
        {
            var results = new List<(bool Written, nint Result)>();
            bool written = false;
            byte[] buffer = new byte[16];

            ValueTask read = raw.ReadAsync(fd =>
            {
                nint n = ReadOnce(fd, buffer);
                results.Add((Volatile.Read(ref written), n));
                return n != -Libc.EAGAIN;
            }, ct);
            Assert.That(read.IsCompleted, Is.False, "nothing to read: the call waits");
            Assert.That(results, Has.All.Matches<(bool Written, nint Result)>(c => c.Result == -Libc.EAGAIN));

            Volatile.Write(ref written, true);
            Assert.That(WriteOnce(w.Fd, "x"u8.ToArray()), Is.EqualTo((nint)1));
            await read;

            Assert.That(results.Count, Is.GreaterThanOrEqualTo(2));
            Assert.That(results[^1], Is.EqualTo((true, (nint)1)), "the last call came after the write and read the byte");
            Assert.That(buffer[0], Is.EqualTo((byte)'x'));
            Assert.That(results.Take(results.Count - 1), Has.All.Matches<(bool Written, nint Result)>(c => c.Result == -Libc.EAGAIN));
        }
    }

    [Test, CancelAfter(5000)]
    public async Task WriteAsync_waits_while_the_pipe_is_full_and_resumes_when_it_drains(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        using (RawFd raw = RawFd.Create(w))
        {
            long capacity = FillPipe(w.Fd);
            Assert.That(capacity, Is.GreaterThan(0));
            int calls = 0;
            byte[] payload = "after the drain"u8.ToArray();

            ValueTask write = raw.WriteAsync(fd =>
            {
                calls++;
                nint n = WriteOnce(fd, payload);
                return n != -Libc.EAGAIN;
            }, ct);
            Assert.That(write.IsCompleted, Is.False, "the pipe is full: the call waits");
            int callsWhileFull = calls;

            long drained = Drain(r.Fd); // the write may land while this drains
            await write;
            drained += Drain(r.Fd);

            Assert.That(calls, Is.GreaterThan(callsWhileFull));
            Assert.That(drained, Is.EqualTo(capacity + payload.Length));
        }
    }

    [Test, CancelAfter(5000)]
    public async Task A_read_and_a_write_may_wait_at_the_same_time(CancellationToken ct)
    {
        (FdConnection a, FdConnection b) = FdConnection.CreatePair();
        await using (a)
        await using (b)
        {
            // The socket of a: fill it so it is not writable, and nothing to read either.
            FillPipe(FdOf(a.OutputFd));
            byte[] one = new byte[1];
            byte[] payload = new byte[1];
            ValueTask read = a.InputFd.ReadAsync(fd => ReadOnce(fd, one) != -Libc.EAGAIN, ct);
            ValueTask write = a.OutputFd.WriteAsync(fd => WriteOnce(fd, payload) != -Libc.EAGAIN, ct);
            Assert.That(read.IsCompleted, Is.False);
            Assert.That(write.IsCompleted, Is.False);

            // b's side: send one byte to a (wakes the read), then drain what a sent (wakes the write).
            int bFd = FdOf(b.InputFd);
            Assert.That(WriteOnce(bFd, "y"u8.ToArray()), Is.EqualTo((nint)1));
            await read;
            Assert.That(one[0], Is.EqualTo((byte)'y'));
            Assert.That(write.IsCompleted, Is.False);
            Assert.That(Drain(bFd), Is.GreaterThan(0));
            await write;
        }
    }

    [Test, CancelAfter(5000)]
    public void A_second_concurrent_read_wait_is_refused(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        using (RawFd raw = RawFd.Create(r))
        {
            ValueTask first = raw.ReadAsync(fd => ReadOnce(fd, new byte[1]) != -Libc.EAGAIN, ct);
            Assert.That(first.IsCompleted, Is.False);

            Assert.That(async () => await raw.ReadAsync(fd => ReadOnce(fd, new byte[1]) != -Libc.EAGAIN, ct), Throws.InvalidOperationException);

            raw.Dispose();
            Assert.That(async () => await first, Throws.InstanceOf<ObjectDisposedException>());
        }
    }

    [Test, CancelAfter(5000)]
    public void Dispose_wakes_a_pending_read_wait_with_ObjectDisposedException(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        {
            RawFd raw = RawFd.Create(r);
            ValueTask read = raw.ReadAsync(fd => ReadOnce(fd, new byte[1]) != -Libc.EAGAIN, ct);
            Assert.That(read.IsCompleted, Is.False);

            raw.Dispose();

            Assert.That(async () => await read, Throws.InstanceOf<ObjectDisposedException>());
            Assert.That(r.IsClosed, Is.False, "the caller's handle still owns the fd");
        }
    }

    [Test, CancelAfter(5000)]
    public void Dispose_wakes_a_pending_write_wait_with_ObjectDisposedException(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        {
            RawFd raw = RawFd.Create(w);
            FillPipe(w.Fd);
            ValueTask write = raw.WriteAsync(fd => WriteOnce(fd, new byte[1]) != -Libc.EAGAIN, ct);
            Assert.That(write.IsCompleted, Is.False);

            raw.Dispose();

            Assert.That(async () => await write, Throws.InstanceOf<ObjectDisposedException>());
        }
    }

    [Test, CancelAfter(5000)]
    public async Task Cancellation_wakes_a_pending_wait_and_the_RawFd_stays_usable(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        using (RawFd raw = RawFd.Create(r))
        {
            var buffer = new byte[1];
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            ValueTask read = raw.ReadAsync(fd => ReadOnce(fd, buffer) != -Libc.EAGAIN, cts.Token);
            Assert.That(read.IsCompleted, Is.False);

            cts.Cancel();

            Assert.That(async () => await read, Throws.InstanceOf<OperationCanceledException>());

            // The next wait works as before.
            ValueTask again = raw.ReadAsync(fd => ReadOnce(fd, buffer) != -Libc.EAGAIN, ct);
            Assert.That(WriteOnce(w.Fd, "z"u8.ToArray()), Is.EqualTo((nint)1));
            await again;
            Assert.That(buffer[0], Is.EqualTo((byte)'z'));
        }
    }

    [Test, CancelAfter(5000)]
    public void An_already_cancelled_token_fails_without_calling_the_function(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        using (RawFd raw = RawFd.Create(r))
        {
            int calls = 0;
            Assert.That(async () => await raw.ReadAsync(_ => ++calls > 0, new CancellationToken(true)), Throws.InstanceOf<OperationCanceledException>());
            Assert.That(async () => await raw.WriteAsync(_ => ++calls > 0, new CancellationToken(true)), Throws.InstanceOf<OperationCanceledException>());
            Assert.That(calls, Is.Zero);
        }
    }

    [Test, CancelAfter(5000)]
    public void An_exception_from_the_function_surfaces_from_the_call(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        using (RawFd raw = RawFd.Create(r))
        {
            var boom = new InvalidDataException("boom");
            var e = Assert.ThrowsAsync<InvalidDataException>(async () => await raw.ReadAsync(_ => throw boom, ct));
            Assert.That(e, Is.SameAs(boom));
        }
    }

    [Test, CancelAfter(5000)]
    public void Control_runs_with_the_fd_and_throws_ObjectDisposedException_after_Dispose(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        {
            RawFd raw = RawFd.Create(w);
            int seen = -1;
            raw.Control(fd => seen = fd);
            Assert.That(seen, Is.EqualTo(w.Fd));
            Assert.That(raw.IsPollable, Is.True);

            raw.Dispose();
            raw.Dispose(); // idempotent

            Assert.Throws<ObjectDisposedException>(() => raw.Control(_ => Assert.Fail("called after dispose")));
            Assert.That(async () => await raw.ReadAsync(_ => true, ct), Throws.InstanceOf<ObjectDisposedException>());
            Assert.That(async () => await raw.WriteAsync(_ => true, ct), Throws.InstanceOf<ObjectDisposedException>());
        }
    }

    [Test, CancelAfter(5000)]
    public async Task Control_on_a_connection_fd_throws_ObjectDisposedException_after_the_connection_is_disposed(CancellationToken ct)
    {
        (FdConnection a, FdConnection b) = FdConnection.CreatePair();
        await using (b)
        {
            RawFd input = a.InputFd;
            int fd = FdOf(input);
            Assert.That(Target(fd), Does.StartWith("socket:"));

            await a.DisposeAsync();

            Assert.Throws<ObjectDisposedException>(() => input.Control(_ => Assert.Fail("called after dispose")));
            Assert.Throws<ObjectDisposedException>(() => a.OutputFd.Control(_ => Assert.Fail("called after dispose")));
        }
    }

    [Test, CancelAfter(5000)]
    public void Create_sets_O_NONBLOCK_and_Dispose_restores_blocking_mode_and_leaves_the_fd_open(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (r)
        using (w)
        {
            Assert.That(Sys.SetNonBlocking(r.Fd, false), Is.EqualTo(1)); // the caller's fd is blocking
            RawFd raw = RawFd.Create(r);
            Assert.That(IsNonBlocking(r.Fd), Is.True);

            raw.Dispose();

            Assert.That(IsNonBlocking(r.Fd), Is.False, "the blocking mode the caller had is back");
            Assert.That(Sys.CheckOpen(r.Fd), Is.GreaterThanOrEqualTo(0), "still open: the caller owns it");
        }
    }

    [Test, CancelAfter(5000)]
    public async Task A_regular_file_is_not_pollable_and_functions_that_return_true_work(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string path = dir.File("data");
        File.WriteAllBytes(path, "file contents"u8.ToArray());
        using FileStream file = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        using RawFd raw = RawFd.Create(file.SafeFileHandle);

        Assert.That(raw.IsPollable, Is.False);
        var buffer = new byte[64];
        nint n = 0;
        await raw.ReadAsync(fd => (n = ReadOnce(fd, buffer)) >= 0, ct);
        Assert.That(buffer.AsSpan(0, (int)n).ToArray(), Is.EqualTo("file contents"u8.ToArray()));
        nint written = 0;
        await raw.WriteAsync(fd => (written = WriteOnce(fd, "+"u8.ToArray())) >= 0, ct);
        Assert.That(written, Is.EqualTo((nint)1));
        int seen = -1;
        raw.Control(fd => seen = fd);
        Assert.That(seen, Is.EqualTo((int)file.SafeFileHandle.DangerousGetHandle()));

        // A file is always ready: a function that reports EAGAIN on it is a caller error, not a wait.
        Assert.That(async () => await raw.ReadAsync(_ => false, ct), Throws.InvalidOperationException);
    }

    private static bool IsNonBlocking(int fd)
    {
        int flags = Sys.Fcntl(fd, Libc.F_GETFL, 0);
        Assert.That(flags, Is.GreaterThanOrEqualTo(0));
        return (flags & Libc.O_NONBLOCK) != 0;
    }
}
