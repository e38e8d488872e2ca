package contextgraph;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;

/**
 * Starts a real Neo4j Community server (the same engine as the neo4j:5.26 image) with a Bolt
 * connector on 127.0.0.1:PORT and a data directory of the caller's choosing.
 *
 * Usage: Neo4jLauncher PORT DATA_DIR PASSWORD
 *
 * Prints "READY bolt://127.0.0.1:PORT" on stdout once Bolt accepts connections. Stops cleanly
 * when its standard input closes (the parent went away) or on SIGTERM.
 */
public final class Neo4jLauncher {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: Neo4jLauncher PORT DATA_DIR PASSWORD");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        Path home = Path.of(args[1]).toAbsolutePath();
        String password = args[2];

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(512))
                .build();

        // Embedded access bypasses auth, so the initial password can be set without a login.
        // On a restart over the same data it is already set, and Neo4j refuses "the same again".
        try {
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
        } catch (RuntimeException e) {
            if (!String.valueOf(e.getMessage()).contains("cannot be the same")) {
                throw e;
            }
        }

        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            dbms.shutdown();
            stop.countDown();
        }));
        System.out.println("READY bolt://127.0.0.1:" + port);
        System.out.flush();

        Thread stdinWatcher = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                    // Drain until the parent closes the pipe.
                }
            } catch (IOException ignored) {
                // A broken pipe means the parent is gone, same as end of input.
            }
            System.exit(0);
        });
        stdinWatcher.setDaemon(true);
        stdinWatcher.start();
        stop.await();
    }
}
