-- shrinkvec.codes_trigger(): the codes of a row follow its vector, whatever a client writes
CREATE TABLE ct (id int PRIMARY KEY, embedding vector(4), bits bit(4), b2 bit(2), p2 vector(2), q int8vec(4));
CREATE TRIGGER codes BEFORE INSERT OR UPDATE OF embedding, bits, b2, p2, q ON ct FOR EACH ROW
	EXECUTE FUNCTION shrinkvec.codes_trigger('v1', 'embedding', 'id', 'cosine', '', '',
		'bits', 'bits', '4', '', '',
		'b2', 'bits', '2', '', '',
		'p2', 'prefix', '2', '', '',
		'q', 'int8', '4', '{-1,-1,-1,-1}', '{1,1,1,1}');
INSERT INTO ct (id, embedding) VALUES (1, '[0.5,-0.25,0,1]');
INSERT INTO ct VALUES (2, '[-1,1,-0.5,0.75]', B'0000', B'11', '[9,9]', '[0,0,0,0]');
INSERT INTO ct (id, embedding, bits) VALUES (3, NULL, B'1111');
SELECT id, bits, b2, p2, q FROM ct ORDER BY id;
UPDATE ct SET embedding = '[1,1,-1,-1]' WHERE id = 1;
UPDATE ct SET bits = B'0000' WHERE id = 2;
SELECT id, bits, b2, p2, q FROM ct ORDER BY id;

-- with a center: sign bits of v - center
CREATE TABLE cc (id int, embedding vector(3), bits bit(3));
CREATE TRIGGER codes BEFORE INSERT OR UPDATE ON cc FOR EACH ROW
	EXECUTE FUNCTION shrinkvec.codes_trigger('v1', 'embedding', 'id', 'l2', '', '{0.5,0.5,-1}', 'bits', 'bits', '3', '', '');
INSERT INTO cc VALUES (1, '[1,0,0]');
SELECT bits FROM cc;

-- errors name the column, its type and the trigger
CREATE TABLE bad (id int, embedding vector(4), bits text);
CREATE TRIGGER codes BEFORE INSERT ON bad FOR EACH ROW
	EXECUTE FUNCTION shrinkvec.codes_trigger('v1', 'embedding', 'id', 'cosine', '', '', 'bits', 'bits', '4', '', '');
INSERT INTO bad (id, embedding) VALUES (1, '[1,2,3,4]');
CREATE TABLE bad2 (id int, embedding vector(4), bits bit(4));
CREATE TRIGGER codes BEFORE INSERT ON bad2 FOR EACH ROW
	EXECUTE FUNCTION shrinkvec.codes_trigger('v1', 'embedding', 'id', 'dot', '', '', 'bits', 'bits', '4', '', '');
INSERT INTO bad2 (id, embedding) VALUES (1, '[1,2,3,4]');
SELECT shrinkvec.codes_trigger();
DROP TABLE ct, cc, bad, bad2;
