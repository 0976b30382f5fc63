using System.Text;
using NUnit.Framework;

namespace PipeTransport.Tests;

/// <summary>The kernel-side copy over a FIFO connection's raw fds.</summary>
public sealed class SpliceCopierFifoTests
{
    [Test, CancelAfter(20_000)]
    public async Task AFifoWithoutItsWriterYetIsNotTakenForEof(CancellationToken ct)
    {
        string dir = Directory.CreateTempSubdirectory("pt-splice-").FullName;
        try
        {
            string a = Path.Combine(dir, "a");
            string b = Path.Combine(dir, "b");
            Fifo.Create(a);
            Fifo.Create(b);

            // The reader of B comes first; nobody has opened A for writing yet.
            Task<byte[]> readB = Task.Run(() => File.ReadAllBytesAsync(b, ct), ct);
            FdConnection connection = await FdConnection.OpenFifoAsync(a, b, null, ct);
            var copier = new SpliceCopier(connection.InputFd, connection.OutputFd);

            // The first splice runs inside this call and reads 0 from A: that is not EOF yet.
            Task<long> copy = copier.CopyToEndAsync(ct);
            Assert.That(copy.IsCompleted, Is.False, "no writer has come: the copy must wait for one, not end");

            await File.WriteAllBytesAsync(a, Encoding.UTF8.GetBytes("late writer"), ct);
            Assert.That(await copy, Is.EqualTo(11));
            await connection.DisposeAsync(); // closes B's write end: its reader sees EOF
            Assert.That(Encoding.UTF8.GetString(await readB), Is.EqualTo("late writer"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
